// Client.track() through the packed lane (TrackLane.kt, src/lean.rs) against a real
// meterline-server: text that is not ASCII crosses unchanged, a lone surrogate is refused as
// uniffi's lowering refused it, an event larger than a thread's buffer is whole, threads track
// at once without sharing a buffer, and a client whose handle was freed refuses to track.
package dev.meterline

import org.json.JSONObject
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.nio.charset.CharacterCodingException
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TrackLaneTest {
    private lateinit var server: TestServer

    @BeforeAll
    fun start() {
        server = TestServer.start()
    }

    @AfterAll
    fun stop() {
        server.close()
    }

    private fun client(): Client =
        Client(ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fetchSchemas = false, flushAt = 500))

    private fun subject(tag: String) = "kt-$tag-${java.util.UUID.randomUUID().toString().take(8)}"

    @Test
    fun `text that is not ASCII crosses unchanged and a lone surrogate is refused`() {
        val subject = subject("Kunde-ü-東京")
        val c = client()
        val note = "€ 1,5 — naïve 😀 東京"
        val id = c.track("api.call", subject, JSONObject().put("note", note).toString(), id = "ïd-😀-1")
        assertEquals("ïd-😀-1", id)
        // A lone surrogate cannot be UTF-8: refused before anything reaches Rust, as before.
        assertThrows<CharacterCodingException> { c.track("api.call", subject, """{"x": "a${'\uD800'}b"}""") }
        assertThrows<CharacterCodingException> { c.track("api.call", "c${'\uDC00'}", "{}") }
        c.shutdown(10.0)
        val stored = server.events("subject" to subject).single()
        assertEquals("ïd-😀-1", stored.getString("id"))
        assertEquals(note, stored.getJSONObject("data").getString("note"))
        assertEquals(1UL, c.stats().sent)
    }

    @Test
    fun `an event larger than a thread's buffer arrives whole`() {
        val subject = subject("large")
        val c = client()
        val blob = "0123456789abcdef".repeat(20_000) + "ü" // 320 KB, past the 64 KiB kept per thread
        val large = c.track("api.call", subject, JSONObject().put("blob", blob).toString())!!
        val small = c.track("api.call", subject, """{"i": 2}""")!!
        val e = assertThrows<MeterlineException.ValidationException> { c.track("api.call", subject, "[" + blob.length + "]") }
        assertEquals("/data" to "invalid_event", e.path to e.code)
        c.shutdown(10.0)
        val byId = server.events("subject" to subject).associateBy { it.getString("id") }
        assertEquals(setOf(large, small), byId.keys)
        assertEquals(blob, byId.getValue(large).getJSONObject("data").getString("blob"))
    }

    @Test
    fun `threads track at once, each event stored once with its own data`() {
        val subject = subject("threads")
        val c = client()
        val threads = 8
        val perThread = 1500
        val pool = Executors.newFixedThreadPool(threads)
        val sent = (0 until threads).map { t ->
            pool.submit<List<Pair<String, String>>> {
                (0 until perThread).map { i ->
                    val tag = "t$t-i$i-" + "x".repeat((t * 37 + i) % 90) // lengths differ per call
                    c.track("api.call", subject, JSONObject().put("tag", tag).toString())!! to tag
                }
            }
        }.flatMap { it.get(60, TimeUnit.SECONDS) }
        pool.shutdown()
        c.shutdown(30.0)
        val stored = server.events("subject" to subject).associate { it.getString("id") to it.getJSONObject("data").getString("tag") }
        assertEquals(threads * perThread, stored.size)
        assertEquals(sent.toMap(), stored)
    }

    @Test
    fun `a client whose native handle was freed refuses to track`() {
        val c = client()
        c.shutdown(10.0)
        c.close() // frees the native handle
        assertThrows<IllegalStateException> { c.track("api.call", "c1", "{}") }
    }
}
