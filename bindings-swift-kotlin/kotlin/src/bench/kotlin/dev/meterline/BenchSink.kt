// The local sink of the Kotlin end-to-end bench (EndToEndBench, scripts/bench-kotlin.sh): an
// HTTP receiver on 127.0.0.1 in its own JVM that counts every event that arrives and answers
// each SDK as its own service would, storing nothing:
//
// * `POST /v1/events` (meterline: a JSON array of CloudEvents) → `202` with meterline's ingest
//   answer, `{"accepted": n, "duplicates": 0, "rejected": []}`, as meterline-server answers a
//   batch it stored (core/src/wire.rs `IngestResponse`); the client then counts the batch
//   delivered event by event, as it does against the server;
// * any other `POST` (posthog-java `/batch`, Segment `/v1/import`: an object whose `batch` is
//   the events) → `200 {"status": 1}`;
// * `GET /__count` → `{"count": n}`, the events counted since the sink started.
//
// Bodies may be gzip (`Content-Encoding: gzip` or the gzip magic). Events are counted by a
// scanner of the JSON structure (objects directly inside the top-level array, or inside the
// top-level object's `batch` array), not by building a document: the sink must not be what
// bounds the SDK it measures. A body it cannot count is answered `400` and not counted.
//
// Usage: BenchSinkKt [--threads N]; prints "sink listening on http://127.0.0.1:PORT".
package dev.meterline

import com.sun.net.httpserver.HttpExchange
import com.sun.net.httpserver.HttpServer
import java.io.ByteArrayInputStream
import java.net.InetSocketAddress
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicLong
import java.util.zip.GZIPInputStream

/** Events counted since the sink started. */
private val counted = AtomicLong()

/**
 * The number of events in a batch body: the objects directly inside a top-level array, or
 * directly inside the `batch` array of a top-level object; null when [body] is not one JSON
 * array or object (it is not otherwise validated).
 */
fun countEvents(body: ByteArray): Int? {
    var depth = 0
    var inString = false
    var escaped = false
    var count = 0
    var topIsArray: Boolean? = null
    var keyStart = -1 // the last string that ended at depth 1 (a key of the top-level object)
    var keyEnd = -1
    var stringStart = -1
    var inBatch = false // inside the top-level object's `batch` array (depth 2)
    for (i in body.indices) {
        val c = body[i].toInt().toChar()
        if (inString) {
            when {
                escaped -> escaped = false
                c == '\\' -> escaped = true
                c == '"' -> {
                    inString = false
                    if (depth == 1) {
                        keyStart = stringStart
                        keyEnd = i
                    }
                }
            }
            continue
        }
        when (c) {
            '"' -> {
                inString = true
                stringStart = i + 1
            }
            '{', '[' -> {
                if (depth == 0) topIsArray = c == '['
                if (c == '{' && ((topIsArray == true && depth == 1) || (inBatch && depth == 2))) count++
                if (c == '[' && depth == 1 && topIsArray == false) inBatch = isKey(body, keyStart, keyEnd, "batch")
                depth++
            }
            '}', ']' -> {
                depth--
                if (depth < 0) return null
                if (depth == 1) inBatch = false
            }
        }
    }
    return if (depth == 0 && !inString && topIsArray != null) count else null
}

private fun isKey(body: ByteArray, start: Int, end: Int, key: String): Boolean =
    start >= 0 && end - start == key.length && key.indices.all { body[start + it] == key[it].code.toByte() }

private fun answer(exchange: HttpExchange, status: Int, body: String) {
    val bytes = body.toByteArray()
    exchange.responseHeaders.add("Content-Type", "application/json")
    exchange.sendResponseHeaders(status, bytes.size.toLong())
    exchange.responseBody.use { it.write(bytes) }
}

private fun handle(exchange: HttpExchange) {
    exchange.use {
        if (exchange.requestMethod == "GET") return answer(exchange, 200, """{"count": ${counted.get()}}""")
        var body = exchange.requestBody.readAllBytes()
        val gzip = exchange.requestHeaders.getFirst("Content-Encoding")?.equals("gzip", ignoreCase = true) == true ||
            (body.size >= 2 && body[0] == 0x1f.toByte() && body[1] == 0x8b.toByte())
        if (gzip) body = GZIPInputStream(ByteArrayInputStream(body)).readAllBytes()
        val n = countEvents(body) ?: return answer(exchange, 400, """{"code": "invalid_body", "message": "not a JSON batch"}""")
        counted.addAndGet(n.toLong())
        if (exchange.requestURI.path == "/v1/events") {
            answer(exchange, 202, """{"accepted": $n, "duplicates": 0, "rejected": []}""")
        } else {
            answer(exchange, 200, """{"status": 1}""")
        }
    }
}

fun main(args: Array<String>) {
    val threads = args.indexOf("--threads").takeIf { it >= 0 }?.let { args[it + 1].toInt() } ?: 4
    // Without TCP_NODELAY the JDK's server sends an answer's headers and body in two segments,
    // the body held back by Nagle until the client's delayed ACK (40 ms): every request
    // waited 40 ms, and meterline (2 batches in flight) measured 22,000 events/s.
    System.setProperty("sun.net.httpserver.nodelay", "true")
    val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 256)
    server.executor = Executors.newFixedThreadPool(threads)
    server.createContext("/") { exchange ->
        try {
            handle(exchange)
        } catch (e: Exception) {
            System.err.println("sink: ${exchange.requestMethod} ${exchange.requestURI}: $e")
            exchange.close()
        }
    }
    server.start()
    println("sink listening on http://127.0.0.1:${server.address.port}")
}
