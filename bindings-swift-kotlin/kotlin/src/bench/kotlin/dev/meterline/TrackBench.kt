// Per-call cost of track() from Kotlin beside the floor of a bare uniffi call with the same
// three string arguments (JNA plus uniffi's RustBuffer lowering), measured in one run (not a
// test: scripts/bench-kotlin.sh runs it). A schema is validated on every call; the endpoint
// refuses connections and the queue is large enough, so nothing leaves the process.
// Usage: TrackBenchKt [calls] → one line per measure, median of 3 runs, in ns per call.
package dev.meterline

fun main(args: Array<String>) {
    val calls = args.firstOrNull()?.toInt() ?: 1_000_000
    val schema = """{"api.call": {"type": "object", "properties": {"i": {"type": "integer"}, "model": {"type": "string"}, "tokens": {"type": "integer"}}}}"""
    val client = Client(
        ClientOptions(
            apiKey = TEST_KEY, endpoint = refusedEndpoint(), fetchSchemas = false, stream = false,
            schemas = schema, maxQueueSize = calls.toLong() * 4, flushInterval = 3600.0,
        ),
    )
    val data = """{"i": 1, "model": "m-large", "tokens": 1234}"""
    fun measure(name: String, call: (Int) -> Unit): Double {
        repeat(calls / 10) { call(it) } // warm-up
        val runs = (0 until 3).map {
            val t0 = System.nanoTime()
            for (i in 0 until calls) call(i)
            (System.nanoTime() - t0).toDouble() / calls
        }.sorted()
        println("%-34s %8.0f ns/call (runs: %s)".format(name, runs[1], runs.joinToString { "%.0f".format(it) }))
        return runs[1]
    }
    val floor = measure("bare uniffi call (3 strings)") { bareCall("api.call", "customer-42", data) }
    val track = measure("track() with a schema") { client.track("api.call", "customer-42", data) }
    println("ratio track/floor: %.2f".format(track / floor))
    runCatching { client.shutdown(0.0) } // the refused endpoint got nothing: a timeout
}
