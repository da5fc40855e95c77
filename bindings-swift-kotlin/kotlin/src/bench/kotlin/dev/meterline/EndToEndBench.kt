// End to end and memory of one SDK in its own JVM (scripts/bench-kotlin.sh runs it once per SDK
// and round, against BenchSink in another JVM): N events tracked from one thread until the sink
// has counted them all, and what the process's memory did meanwhile.
//
// * meterline: `Client.track()` with a schema validated on every call, then `flush()` (returns
//   once the sink has answered for every batch), then the sink's count is checked;
// * posthog-java 1.2.0 `capture()` and Segment analytics-java 3.5.1 `enqueue()` (+ `flush()`):
//   the sink's count is polled until it has them all.
//
// Every SDK keeps its default batching and sending; meterline's queue is raised to hold N
// events (its default `maxQueueSize` is 100,000; the peers' queues are unbounded). Before the
// measure: a warm-up of N/10 events, delivered, then a GC. Memory figures:
// * heap: used heap after a GC at the end minus the same before (`heap_retained_mb`), and the
//   peak of the used heap during the run minus the used heap before (`heap_peak_mb`, sampled
//   every 5 ms: garbage included, as a heap graph shows it);
// * RSS: the peak resident set of the process during the run (the kernel's high-water mark,
//   reset after the warm-up through /proc/self/clear_refs) minus the RSS before
//   (`rss_growth_mb`) — meterline's queue is native memory, which only this sees.
//
// Usage: EndToEndBenchKt --sdk meterline|posthog|segment --sink URL [--events N]
// Prints one JSON line.
package dev.meterline

import com.posthog.java.PostHog
import com.segment.analytics.Analytics
import com.segment.analytics.messages.TrackMessage
import java.io.File
import java.lang.management.ManagementFactory
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong

private val http: HttpClient = HttpClient.newHttpClient()

/** The events the sink has counted. */
private fun sinkCount(sink: String): Long {
    val body = http.send(HttpRequest.newBuilder(URI.create("$sink/__count")).build(), HttpResponse.BodyHandlers.ofString()).body()
    return Regex("\"count\": (\\d+)").find(body)?.groupValues?.get(1)?.toLong() ?: error("sink answered $body")
}

/** Polls the sink until it has counted [n] events more than [base]; fails after [timeoutS]. */
private fun awaitSink(sink: String, base: Long, n: Int, timeoutS: Long = 600) {
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS)
    while (sinkCount(sink) - base < n) {
        check(System.nanoTime() < deadline) { "the sink has ${sinkCount(sink) - base} of $n events after $timeoutS s" }
        Thread.sleep(2)
    }
}

/** A field of /proc/self/status in MB (`VmRSS`, `VmHWM`). */
private fun procStatusMb(field: String): Double =
    File("/proc/self/status").readLines().first { it.startsWith("$field:") }
        .split(Regex("\\s+"))[1].toDouble() / 1024.0

private fun usedHeapMb(): Double = ManagementFactory.getMemoryMXBean().heapMemoryUsage.used / 1048576.0

/** Used heap after full collections (twice: what a finalizer or cleaner freed goes too). */
private fun usedHeapAfterGcMb(): Double {
    repeat(2) {
        System.gc()
        Thread.sleep(100)
    }
    return usedHeapMb()
}

/** One SDK's way to track an event and to get everything tracked delivered. */
private interface Sdk {
    fun track(i: Int)
    fun deliver(base: Long, n: Int)
    fun close()
}

private class Meterline(private val sink: String, capacity: Int) : Sdk {
    private val schema = """{"api.call": {"type": "object", "properties": {"i": {"type": "integer"}, "model": {"type": "string"}, "tokens": {"type": "integer"}}}}"""
    val client = Client(
        ClientOptions(apiKey = TEST_KEY, endpoint = sink, fetchSchemas = false, stream = false, schemas = schema, maxQueueSize = capacity.toLong()),
    )

    override fun track(i: Int) {
        checkNotNull(client.track("api.call", "customer-42", """{"i": $i, "model": "m-large", "tokens": 1234}""")) { "event $i dropped" }
    }

    override fun deliver(base: Long, n: Int) {
        client.flush(600.0)
        val arrived = sinkCount(sink) - base
        check(arrived == n.toLong()) { "flush() returned with $arrived of $n events at the sink" }
    }

    override fun close() = client.shutdown(10.0)
}

private class Posthog(private val sink: String) : Sdk {
    private val ph = PostHog.Builder("phc_benchmark").host(sink).build()

    override fun track(i: Int) = ph.capture("customer-42", "api.call", mapOf("i" to i, "model" to "m-large", "tokens" to 1234))

    override fun deliver(base: Long, n: Int) = awaitSink(sink, base, n)

    override fun close() = ph.shutdown()
}

private class Segment(private val sink: String) : Sdk {
    private val seg = Analytics.builder("benchmark-write-key").endpoint(sink).build()

    override fun track(i: Int) =
        seg.enqueue(TrackMessage.builder("api.call").userId("customer-42").properties(mapOf("i" to i, "model" to "m-large", "tokens" to 1234)))

    override fun deliver(base: Long, n: Int) {
        seg.flush()
        awaitSink(sink, base, n)
    }

    override fun close() = seg.shutdown()
}

fun main(args: Array<String>) {
    fun arg(name: String): String? = args.indexOf(name).takeIf { it >= 0 }?.let { args[it + 1] }
    val events = arg("--events")?.toInt() ?: 200_000
    val sink = requireNotNull(arg("--sink")) { "--sink URL is required" }
    val name = requireNotNull(arg("--sdk")) { "--sdk meterline|posthog|segment is required" }
    val warmup = events / 10
    val sdk: Sdk = when (name) {
        "meterline" -> Meterline(sink, events + warmup)
        "posthog" -> Posthog(sink)
        "segment" -> Segment(sink)
        else -> error("--sdk $name: expected meterline, posthog or segment")
    }
    val load0 = File("/proc/loadavg").readText().split(" ")[0].toDouble()

    var base = sinkCount(sink)
    for (i in 0 until warmup) sdk.track(i)
    sdk.deliver(base, warmup)

    val heap0 = usedHeapAfterGcMb()
    val rss0 = procStatusMb("VmRSS")
    File("/proc/self/clear_refs").writeText("5") // resets VmHWM to the current RSS
    val peakHeap = AtomicLong(ManagementFactory.getMemoryMXBean().heapMemoryUsage.used)
    val sampler = Thread {
        val memory = ManagementFactory.getMemoryMXBean()
        while (!Thread.currentThread().isInterrupted) {
            peakHeap.accumulateAndGet(memory.heapMemoryUsage.used, ::maxOf)
            try {
                Thread.sleep(5)
            } catch (_: InterruptedException) {
                break
            }
        }
    }.apply { isDaemon = true }
    sampler.start()
    val cpu0 = ManagementFactory.getOperatingSystemMXBean().let { (it as com.sun.management.OperatingSystemMXBean).processCpuTime }

    base = sinkCount(sink)
    val t0 = System.nanoTime()
    for (i in 0 until events) sdk.track(i)
    val t1 = System.nanoTime()
    sdk.deliver(base, events)
    val t2 = System.nanoTime()

    val cpu = ManagementFactory.getOperatingSystemMXBean().let { (it as com.sun.management.OperatingSystemMXBean).processCpuTime } - cpu0
    sampler.interrupt()
    sampler.join()
    val rssPeak = procStatusMb("VmHWM")
    val heap1 = usedHeapAfterGcMb()
    val arrived = sinkCount(sink) - base
    sdk.close()
    val load1 = File("/proc/loadavg").readText().split(" ")[0].toDouble()
    println(
        "{\"sdk\": \"$name\", \"events\": $events, \"arrived\": $arrived, " +
            "\"events_per_s\": ${events / ((t2 - t0) / 1e9)}, \"per_call_ns\": ${(t1 - t0).toDouble() / events}, " +
            "\"calls_s\": ${(t1 - t0) / 1e9}, \"deliver_s\": ${(t2 - t1) / 1e9}, \"process_cpu_s\": ${cpu / 1e9}, " +
            "\"heap_before_mb\": $heap0, \"heap_retained_mb\": ${heap1 - heap0}, " +
            "\"heap_peak_mb\": ${peakHeap.get() / 1048576.0 - heap0}, \"rss_before_mb\": $rss0, " +
            "\"rss_peak_mb\": $rssPeak, \"rss_growth_mb\": ${rssPeak - rss0}, " +
            "\"load\": [$load0, $load1], \"jvm\": \"${System.getProperty("java.version")}\"}",
    )
}
