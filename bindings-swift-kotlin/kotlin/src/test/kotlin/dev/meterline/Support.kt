// Test helpers: a real meterline-server on 127.0.0.1 (embedded SQLite in a temp dir), small
// HTTP helpers to read back what it stored and to set up plans, and the shared vectors.
package dev.meterline

import org.json.JSONArray
import org.json.JSONObject
import java.io.File
import java.net.ServerSocket
import java.net.URI
import java.net.URLEncoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.TimeUnit

/** The repository root (set by the pom from the project's location). */
val REPO: File = File(System.getProperty("meterline.repo") ?: "../..").canonicalFile

/** A shared vector file of tests/vectors/, parsed. */
fun vector(name: String): JSONObject = JSONObject(File(REPO, "tests/vectors/$name").readText())

/** Where cargo builds: $CARGO_TARGET_DIR, else the repository's target/. */
fun cargoTargetDir(): File = System.getenv("CARGO_TARGET_DIR")?.let { File(it).absoluteFile } ?: File(REPO, "target")

/** The server binary: $METERLINE_SERVER_BIN, or the workspace's debug build. */
fun serverBinary(): File {
    val bin = System.getenv("METERLINE_SERVER_BIN")?.let(::File) ?: File(cargoTargetDir(), "debug/meterline-server")
    check(bin.exists()) { "$bin not found: run `cargo build -p meterline-server` (scripts/test-kotlin.sh does)" }
    return bin
}

/** A port nothing listens on: a connection to it is refused at once. */
fun refusedEndpoint(): String {
    val port = ServerSocket(0).use { it.localPort }
    return "http://127.0.0.1:$port"
}

/** Polls [predicate] until it holds or [timeoutMs] passes; returns its last value. */
fun waitUntil(timeoutMs: Long = 10_000, predicate: () -> Boolean): Boolean {
    val deadline = System.nanoTime() + timeoutMs * 1_000_000
    while (System.nanoTime() < deadline) {
        if (predicate()) return true
        Thread.sleep(20)
    }
    return predicate()
}

/** A syntactically valid secret key no server knows. */
const val TEST_KEY = "ml_sk_vectors_0123456789abcdef0123"

/** A running meterline-server and its default project's keys. */
class TestServer private constructor(
    val endpoint: String,
    val secretKey: String,
    val adminKey: String,
    private val process: Process,
    private val dir: File,
) : AutoCloseable {
    private val http: HttpClient = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    /** One request; the JSON answer (or null for an empty body). Fails on a non-2xx status. */
    fun request(method: String, path: String, body: Any? = null, key: String = secretKey): Any? {
        val publisher =
            if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body.toString())
        val req = HttpRequest.newBuilder(URI.create(endpoint + path))
            .method(method, publisher)
            .header("Authorization", "Bearer $key")
            .header("Content-Type", "application/json")
            .timeout(Duration.ofSeconds(10))
            .build()
        val resp = http.send(req, HttpResponse.BodyHandlers.ofString())
        check(resp.statusCode() in 200..299) { "$method $path: ${resp.statusCode()} ${resp.body()}" }
        val text = resp.body().trim()
        return when {
            text.isEmpty() -> null
            text.startsWith("[") -> JSONArray(text)
            else -> JSONObject(text)
        }
    }

    /** An admin request. */
    fun admin(method: String, path: String, body: Any? = null): Any? = request(method, "/v1/admin/$path", body, adminKey)

    /** Every stored event matching [filters] (`type`, `subject`), oldest first. */
    fun events(vararg filters: Pair<String, String>): List<JSONObject> {
        val out = mutableListOf<JSONObject>()
        var cursor: String? = null
        while (true) {
            val query = (filters.toList() + ("limit" to "1000") + listOfNotNull(cursor?.let { "cursor" to it }))
                .joinToString("&") { (k, v) -> "$k=${URLEncoder.encode(v, Charsets.UTF_8)}" }
            val page = request("GET", "/v1/events?$query") as JSONObject
            val events = page.getJSONArray("events")
            for (i in 0 until events.length()) out.add(events.getJSONObject(i))
            cursor = page.optString("next_cursor", "").ifEmpty { null }
            if (cursor == null || page.isNull("next_cursor")) return out
        }
    }

    /** Stops the server (SIGTERM) and removes its files. */
    override fun close() {
        stop()
        dir.deleteRecursively()
    }

    /** Stops the server, keeping its files. */
    fun stop() {
        if (process.isAlive) {
            process.destroy()
            process.waitFor(10, TimeUnit.SECONDS)
        }
    }

    companion object {
        /** Starts meterline-server on a free port with a fresh SQLite file. */
        fun start(): TestServer {
            val dir = Files.createTempDirectory("meterline-kotlin-").toFile()
            val process = ProcessBuilder(
                serverBinary().path, "serve", "--bind", "127.0.0.1:0", "--database-url", "sqlite://$dir/m.db",
            ).redirectError(File(dir, "server.err")).apply { environment()["RUST_LOG"] = "warn" }.start()
            val found = ConcurrentHashMap<String, String>()
            val prefixes = mapOf(
                "meterline-server listening on " to "endpoint",
                "secret key: " to "secret",
                "admin key: " to "admin",
            )
            Thread {
                process.inputStream.bufferedReader().forEachLine { line ->
                    for ((prefix, name) in prefixes) if (line.startsWith(prefix)) found[name] = line.removePrefix(prefix).trim()
                }
            }.apply { isDaemon = true }.start()
            if (!waitUntil(60_000) { found.size == 3 || !process.isAlive }) Unit
            if (found.size < 3) {
                process.destroyForcibly()
                error("meterline-server did not start: ${File(dir, "server.err").readText().takeLast(2000)}")
            }
            return TestServer(found.getValue("endpoint"), found.getValue("secret"), found.getValue("admin"), process, dir)
        }
    }
}

/** A catalog of features and two plans with names unique to one test. */
class Catalog(server: TestServer, limit: Int = 1000, thresholds: List<Double>? = null) {
    private val tag = java.util.UUID.randomUUID().toString().take(8)
    val sso = "sso_$tag"
    val calls = "calls_$tag"
    val tier = "tier_$tag"
    val eventType = "api.call.$tag"
    val free = "free_$tag"
    val pro = "pro_$tag"

    init {
        server.admin("PUT", "features/$sso", JSONObject(mapOf("kind" to "boolean")))
        server.admin("PUT", "features/$calls", JSONObject(mapOf("kind" to "metered", "event_type" to eventType)))
        server.admin("PUT", "features/$tier", JSONObject(mapOf("kind" to "config")))
        val callsSpec = JSONObject(mapOf("limit" to limit))
        if (thresholds != null) callsSpec.put("thresholds", JSONArray(thresholds))
        server.admin(
            "PUT", "plans/$free",
            JSONObject().put("features", JSONObject().put(calls, callsSpec).put(tier, JSONObject().put("value", JSONObject().put("seats", 1)))),
        )
        server.admin(
            "PUT", "plans/$pro",
            JSONObject().put(
                "features",
                JSONObject().put(sso, JSONObject()).put(calls, callsSpec).put(tier, JSONObject().put("value", JSONObject().put("seats", 10))),
            ),
        )
    }

    /** Puts [subject] on [plan]. */
    fun setPlan(server: TestServer, subject: String, plan: String) {
        server.admin("PUT", "customers/$subject", JSONObject().put("plan", plan))
    }
}

/** A listener that records what it is told. */
class Recorder : ClientListener {
    val thresholds: MutableList<UsageThreshold> = java.util.Collections.synchronizedList(mutableListOf())
    val errors: MutableList<MeterlineException> = java.util.Collections.synchronizedList(mutableListOf())
    val connections: MutableList<Pair<Boolean, String>> = java.util.Collections.synchronizedList(mutableListOf())

    override fun onUsageThreshold(event: UsageThreshold) {
        thresholds.add(event)
    }

    override fun onError(error: MeterlineException) {
        errors.add(error)
    }

    override fun onConnectionChange(connected: Boolean, reason: String) {
        connections.add(connected to reason)
    }
}
