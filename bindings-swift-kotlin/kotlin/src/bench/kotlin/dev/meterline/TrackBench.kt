// Per-call cost of Client.track() on the JVM beside its floors and beside the JVM SDKs users
// would pick instead, all in one JVM run (not a test: scripts/bench-kotlin.sh builds it with
// the pom's `bench` profile, starts the sink and runs it; `make bench` runs that script).
//
// Floors: a JNA call without arguments (direct and interface mapping), a bare uniffi call with
// the same three strings as track() (uniffi's generated path), the packed lane without the
// core (the arguments packed and read by Rust, nothing tracked), and the core's own track()
// repeated inside Rust (one crossing for 1,000 events: what is left without the JVM). Figures
// are wall time and the calling thread's CPU time per call. meterline validates a schema on
// every call; its endpoint refuses connections and its queue holds every event, so nothing
// leaves the process. posthog-java and Segment's analytics-java send to the sink (their
// background threads share the machine with the calls, as they do in use).
//
// Usage: TrackBenchKt [--calls N] [--sink URL] [--json FILE]; prints one line per measure
// (median of 3 runs after a warm-up of N/10 calls, ns per call) and the ratios.
package dev.meterline

import com.posthog.java.PostHog
import com.segment.analytics.Analytics
import com.segment.analytics.messages.TrackMessage
import com.sun.jna.Library
import com.sun.jna.Native
import com.sun.jna.NativeLibrary
import java.io.File
import java.lang.management.ManagementFactory
import java.util.concurrent.TimeUnit

/** The library's argument-less entry point, JNA direct-mapped. */
object NoArgDirect {
    init {
        Native.register(NoArgDirect::class.java, "meterline_uniffi")
    }

    external fun ffi_meterline_uniffi_uniffi_contract_version(): Int
}

/** The packed lane's `track()` repeated from Rust in one crossing (src/lean.rs): the core's own. */
object RepeatLib {
    init {
        Native.register(RepeatLib::class.java, "meterline_uniffi")
    }

    external fun meterline_track_packed_repeat(client: Long, buf: com.sun.jna.Pointer, len: Int, cap: Int, times: Int): Int
}

/** The same entry point, JNA interface-mapped (JNA's reflective proxy per call). */
interface NoArgLibrary : Library {
    fun ffi_meterline_uniffi_uniffi_contract_version(): Int
}

/**
 * One measure of [calls] calls per run: the runs' wall time in ns per call (median: [ns]), the
 * calling thread's CPU time per call (median; unlike wall time it leaves out the time the
 * thread waited for a core on a busy machine), and what the runs allocated and cost the GC.
 */
class Measure(
    val id: String, val name: String, val calls: Int, val runs: List<Double>, val cpuNs: Double,
    val gcCount: Long, val gcMs: Long, val bytesPerCall: Double,
) {
    val ns: Double get() = runs[runs.size / 2]
}

private fun gcTotals(): Pair<Long, Long> =
    ManagementFactory.getGarbageCollectorMXBeans().fold(0L to 0L) { (n, ms), gc ->
        (n + gc.collectionCount.coerceAtLeast(0)) to (ms + gc.collectionTime.coerceAtLeast(0))
    }

private fun allocatedBytes(): Long =
    (ManagementFactory.getThreadMXBean() as com.sun.management.ThreadMXBean).currentThreadAllocatedBytes

private fun loadAverage(): Double = File("/proc/loadavg").readText().split(" ")[0].toDouble()

fun main(args: Array<String>) {
    fun arg(name: String): String? = args.indexOf(name).takeIf { it >= 0 }?.let { args[it + 1] }
    val calls = arg("--calls")?.toInt() ?: 200_000
    val sink = arg("--sink")
    val loadBefore = loadAverage()
    val measures = mutableListOf<Measure>()
    // `perCall`: events per call of [call] (a loop inside Rust); figures are per event.
    fun measure(id: String, name: String, n: Int = calls, perCall: Int = 1, call: (Int) -> Unit): Measure {
        System.gc() // what an earlier measure left is not collected during this one
        Thread.sleep(200)
        repeat(n / 10) { call(it) } // warm-up
        val (gc0, gcMs0) = gcTotals()
        val bytes0 = allocatedBytes()
        val threads = ManagementFactory.getThreadMXBean()
        val runs = (0 until 3).map {
            val cpu0 = threads.currentThreadCpuTime
            val t0 = System.nanoTime()
            for (i in 0 until n) call(i)
            val wall = (System.nanoTime() - t0).toDouble() / n / perCall
            wall to (threads.currentThreadCpuTime - cpu0).toDouble() / n / perCall
        }.sortedBy { it.first }
        val bytes = (allocatedBytes() - bytes0).toDouble() / (3.0 * n * perCall)
        val (gc1, gcMs1) = gcTotals()
        val m = Measure(id, name, n * perCall, runs.map { it.first }, runs.map { it.second }.sorted()[1], gc1 - gc0, gcMs1 - gcMs0, bytes)
        println(
            "%-52s %9.0f ns/call  (runs %s; thread CPU %.0f ns/call; %,.0f B/call; GC %d× %d ms)".format(
                name, m.ns, m.runs.joinToString("/") { "%.0f".format(it) }, m.cpuNs, bytes, m.gcCount, m.gcMs,
            ),
        )
        measures += m
        return m
    }

    val schema = """{"api.call": {"type": "object", "properties": {"i": {"type": "integer"}, "model": {"type": "string"}, "tokens": {"type": "integer"}}}}"""
    val client = Client(
        ClientOptions(
            apiKey = TEST_KEY, endpoint = refusedEndpoint(), fetchSchemas = false, stream = false,
            schemas = schema, maxQueueSize = calls.toLong() * 8, flushInterval = 3600.0,
        ),
    )
    val library = NativeLibrary.getInstance("meterline_uniffi").file
    println("native library: $library (${library.length() / 1024} KiB)")
    println("JVM: ${System.getProperty("java.vm.name")} ${System.getProperty("java.version")}; JNA ${Native.VERSION}; load $loadBefore")
    val data = """{"i": 1, "model": "m-large", "tokens": 1234}"""
    val props = mapOf<String, Any>("i" to 1, "model" to "m-large", "tokens" to 1234)
    val noArg = Native.load("meterline_uniffi", NoArgLibrary::class.java)
    val packed = PackedBuffer(4096)

    var sum = 0L
    val direct = measure("jna-direct", "floor: JNA call, no arguments (direct mapping)") { sum += NoArgDirect.ffi_meterline_uniffi_uniffi_contract_version() }
    measure("jna-interface", "floor: JNA call, no arguments (interface mapping)") { sum += noArg.ffi_meterline_uniffi_uniffi_contract_version() }
    val lane = measure("packed-lane", "floor: packed lane, no core (5 strings packed + read)") {
        val n = packed.pack("api.call", "customer-42", data, null, null)
        sum += TrackLaneLib.meterline_packed_floor(packed.memory, n)
    }
    val core = measure("core", "core: track() repeated inside Rust (lane unpacking included)", calls / 1000, 1000) {
        val n = packed.pack("api.call", "customer-42", data, null, null)
        client.callWithBorrowedHandle { handle ->
            check(RepeatLib.meterline_track_packed_repeat(handle, packed.memory, n, packed.capacity, 1000) >= 0)
        }
    }
    val track = measure("track", "meterline track() (schema-validated)") { client.track("api.call", "customer-42", data) }
    var posthog: Measure? = null
    var segment: Measure? = null
    if (sink != null) {
        val ph = PostHog.Builder("phc_benchmark").host(sink).build()
        posthog = measure("posthog", "posthog-java 1.2.0 capture()") { ph.capture("customer-42", "api.call", props) }
        ph.shutdown()
        val seg = Analytics.builder("benchmark-write-key").endpoint(sink)
            .flushInterval(1, TimeUnit.SECONDS).build()
        segment = measure("segment", "segment analytics-java 3.5.1 enqueue()") {
            seg.enqueue(TrackMessage.builder("api.call").userId("customer-42").properties(props))
        }
        seg.flush()
        seg.shutdown()
    }
    // uniffi's generated path last, with a tenth of the calls: its garbage (JNA Structures and
    // Memory, each with a Cleaner reference) slows every GC after it.
    measure("uniffi-no-arguments", "floor: uniffi method, no arguments (isOptedOut)", calls / 10) { if (client.isOptedOut()) sum++ }
    val bare = measure("uniffi-three-strings", "floor: uniffi call, 3 strings (bareCall)", calls / 10) {
        sum += bareCall("api.call", "customer-42", data).toLong()
    }
    val loadAfter = loadAverage()
    println()
    fun ratio(label: String, a: Measure, b: Measure) =
        println("%-34s %6.2f× (thread CPU %.2f×)".format(label, a.ns / b.ns, a.cpuNs / b.cpuNs))
    ratio("track() / JNA no-argument call:", track, direct)
    ratio("track() / packed lane floor:", track, lane)
    ratio("track() / core track() inside Rust:", track, core)
    ratio("track() / bare uniffi call:", track, bare)
    posthog?.let { ratio("posthog capture() / track():", it, track) }
    segment?.let { ratio("segment enqueue() / track():", it, track) }
    println("load average: $loadBefore before, $loadAfter after (checksum $sum)")
    runCatching { client.shutdown(0.0) } // the refused endpoint got nothing: a timeout

    arg("--json")?.let { path ->
        fun q(s: String) = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
        val rows = measures.joinToString(",\n") { m ->
            "    {\"id\": ${q(m.id)}, \"name\": ${q(m.name)}, \"calls\": ${m.calls}, \"ns\": ${m.ns}, " +
                "\"runs\": [${m.runs.joinToString()}], \"cpu_ns\": ${m.cpuNs}, " +
                "\"bytes_per_call\": ${m.bytesPerCall}, \"gc_count\": ${m.gcCount}, \"gc_ms\": ${m.gcMs}}"
        }
        File(path).writeText(
            "{\n  \"calls\": $calls,\n  \"jvm\": ${q(System.getProperty("java.version"))},\n" +
                "  \"jna\": ${q(Native.VERSION)},\n  \"load\": [$loadBefore, $loadAfter],\n" +
                "  \"measures\": [\n$rows\n  ]\n}\n",
        )
    }
    // Segment's sender thread is not a daemon and would keep draining its queue: end here.
    kotlin.system.exitProcess(0)
}
