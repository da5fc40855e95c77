// The child JVM of SpoolKillTest (not a test): tracks the event indices start..stop through
// a client with a disk spool, printing `accepted <index>` after each track() returned (one
// flushed line each, so a line is out before the next track()), then flushes and prints
// `spool_length <n>`.
// Usage: SpoolChildKt <api_key> <endpoint> <spool_dir> <event_type> <start> <stop>
package dev.meterline

import kotlin.system.exitProcess

fun main(args: Array<String>) {
    val (apiKey, endpoint, spoolDir, eventType) = args
    val (start, stop) = args.drop(4).map { it.toInt() }
    val client = Client(
        ClientOptions(
            apiKey = apiKey, endpoint = endpoint, source = "kotlin-spool-kill", fetchSchemas = false, stream = false,
            flushInterval = 0.05, maxInFlight = 4, spoolDir = spoolDir, spoolFsync = "never",
        ),
    )
    val out = System.out
    out.println("replaying ${client.stats().spoolLength}")
    out.flush()
    for (index in start until stop) {
        client.track(eventType, "customer-${index % 31}", """{"i":$index}""", id = spoolId(index))
        out.println("accepted $index")
        out.flush()
    }
    client.flush(120.0)
    out.println("spool_length ${client.stats().spoolLength}")
    out.flush()
    client.shutdown(10.0)
    exitProcess(0)
}

/** The id of event [index]. */
fun spoolId(index: Int): String = "kt-spool-%06d".format(index)
