// meterline quick start for Kotlin (JVM).
//
//     METERLINE_API_KEY=ml_sk_... METERLINE_ENDPOINT=http://127.0.0.1:8080 mvn -q compile exec:java
//
// Tracks a few billable events for two customers, shows an invalid event being refused, asks
// one customer's entitlement (suspending), flushes, prints the client's counters, and prints
// what the server stored (read back through `GET /v1/events`).
import dev.meterline.Client
import dev.meterline.ClientListener
import dev.meterline.ClientOptions
import dev.meterline.MeterlineException
import dev.meterline.UsageThreshold
import dev.meterline.code
import kotlinx.coroutines.runBlocking
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Instant
import kotlin.system.exitProcess

fun main() = runBlocking {
    val apiKey = System.getenv("METERLINE_API_KEY") ?: run {
        System.err.println("set METERLINE_API_KEY to a secret key (ml_sk_...)")
        exitProcess(2)
    }
    val endpoint = System.getenv("METERLINE_ENDPOINT") ?: "http://127.0.0.1:8080"

    val errors = java.util.Collections.synchronizedList(mutableListOf<MeterlineException>())
    val listener = object : ClientListener {
        override fun onUsageThreshold(event: UsageThreshold) = println("usage threshold: $event")
        override fun onError(error: MeterlineException) {
            errors.add(error)
        }
        override fun onConnectionChange(connected: Boolean, reason: String) = Unit
    }
    val client = Client(ClientOptions(apiKey = apiKey, endpoint = endpoint, source = "kotlin-quickstart"), listener)

    // Every billable action is one track(): it validates and queues, never waits on the
    // network. The background sender batches, compresses and retries. Data is JSON text.
    for (i in 0 until 5) {
        val id = client.track("api.call", "customer-42", """{"tokens": ${100 * (i + 1)}, "model": "m-large"}""")
        println("tracked api.call for customer-42 ($id)")
    }
    client.track("api.call", "customer-7", """{"tokens": 42, "model": "m-small"}""", time = Instant.now().toString())

    // An invalid event fails at once, with the JSON pointer of the problem, and is not queued.
    try {
        client.track("api.call", "customer-42", """{"tokens": NaN}""")
    } catch (e: MeterlineException.ValidationException) {
        println("refused as expected: ${e.detail}")
    }

    // Entitlements: answered from a local cache kept current by the server's stream; a miss
    // suspends at most entitlementTimeout, then answers the fallback with a reason.
    val answer = client.entitlement("customer-42", "api_calls")
    println(
        "entitlement api_calls for customer-42: hasAccess=${answer.hasAccess} kind=${answer.kind} " +
            "usage=${answer.usage} limit=${answer.limit} source=${answer.source} reason=${answer.reason}",
    )

    client.flush(10.0)
    val stats = client.stats()
    println(
        "stats: enqueued=${stats.enqueued} sent=${stats.sent} duplicates=${stats.duplicates} " +
            "rejected=${stats.rejected} dropped=${stats.dropped}",
    )
    client.shutdown(10.0)
    for (problem in errors) println("background error: ${problem.code}: ${problem.message}")

    // Read back what the server stored.
    val request = HttpRequest.newBuilder(URI.create(endpoint.trimEnd('/') + "/v1/events?limit=1000"))
        .header("Authorization", "Bearer $apiKey").build()
    val body = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString()).body()
    val stored = Regex("\"id\":").findAll(body).count()
    println("the server stored $stored events")
    if (stats.sent < 6UL) {
        System.err.println("expected the 6 events to be sent, got ${stats.sent}")
        exitProcess(1)
    }
}
