// track(), flush(), shutdown() and stats() against a real meterline-server, and bad input
// refused with the typed exceptions.
package dev.meterline

import org.json.JSONObject
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ClientTest {
    private lateinit var server: TestServer

    @BeforeAll
    fun start() {
        server = TestServer.start()
    }

    @AfterAll
    fun stop() {
        server.close()
    }

    private fun client(options: ClientOptions.() -> ClientOptions = { this }): Client =
        Client(ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fetchSchemas = false).options())

    @Test
    fun `tracked events are stored exactly once with their ids and data`() {
        val subject = "kt-${java.util.UUID.randomUUID()}"
        val c = client { copy(flushAt = 100) }
        val ids = (0 until 1000).map { i -> c.track("api.call", subject, """{"i":$i,"model":"m"}""")!! }
        // A caller-given id sent twice is stored once.
        c.track("api.call", subject, """{"i":1000}""", id = ids[0])
        c.flush(10.0)
        val stats = c.stats()
        assertEquals(1001UL, stats.enqueued)
        assertEquals(1000UL, stats.sent)
        assertEquals(1UL, stats.duplicates)
        assertEquals(0UL, stats.dropped + stats.queueLength)
        c.shutdown()
        val stored = server.events("subject" to subject)
        assertEquals(1000, stored.size)
        assertEquals(ids.toSet(), stored.map { it.getString("id") }.toSet())
        val byId = stored.associateBy { it.getString("id") }
        assertEquals(7, byId.getValue(ids[7]).getJSONObject("data").getInt("i"))
        assertEquals("m", byId.getValue(ids[7]).getJSONObject("data").getString("model"))
    }

    @Test
    fun `an explicit time is kept and shutdown makes track refuse`() {
        val subject = "kt-${java.util.UUID.randomUUID()}"
        val c = client()
        val id = c.track("api.call", subject, "{}", id = "my-id-1", time = "2026-11-24T10:00:00.123Z")
        assertEquals("my-id-1", id)
        c.shutdown(10.0)
        val stored = server.events("subject" to subject).single()
        assertEquals("2026-11-24T10:00:00.123Z", stored.getString("time"))
        val e = assertThrows<MeterlineException.ClosedException> { c.track("api.call", subject, "{}") }
        assertEquals("client_closed", e.code)
        c.shutdown() // harmless twice
    }

    @Test
    fun `bad data is refused at once with a ValidationException naming the path`() {
        val c = client()
        val cases = mapOf(
            "[1,2]" to ("invalid_event" to "/data"),
            "42" to ("invalid_event" to "/data"),
            "{\"x\": NaN}" to ("invalid_event" to "/data"),
            "{\"x\": " to ("invalid_event" to "/data"),
        )
        for ((data, want) in cases) {
            val e = assertThrows<MeterlineException.ValidationException>(data) { c.track("api.call", "c1", data) }
            assertEquals(want, e.code to e.path, data)
            assertTrue(e.isA("MeterlineError") && e.isA("ValidationError"))
        }
        val empty = assertThrows<MeterlineException.ValidationException> { c.track("", "c1", "{}") }
        assertEquals("/type", empty.path)
        assertEquals(0UL, c.stats().enqueued)
        c.shutdown(0.0)
    }

    @Test
    fun `a schema violation names the field, checked on every call`() {
        val schemas = JSONObject().put(
            "api.call",
            JSONObject("""{"type":"object","required":["tokens"],"properties":{"tokens":{"type":"integer","minimum":0}}}"""),
        )
        val c = client { copy(schemas = schemas.toString()) }
        assertNotNull(c.track("api.call", "c1", """{"tokens": 3}"""))
        val e = assertThrows<MeterlineException.ValidationException> { c.track("api.call", "c1", """{"tokens": -1}""") }
        assertEquals("schema_violation", e.code)
        assertEquals("/data/tokens", e.path)
        val missing = assertThrows<MeterlineException.ValidationException> { c.track("api.call", "c1", "{}") }
        assertEquals("schema_violation", missing.code)
        assertEquals(1UL, c.stats().enqueued)
        c.shutdown()
    }

    @Test
    fun `wrong option values are ConfigExceptions naming the option in camelCase`() {
        val bad = listOf(
            ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, flushAt = 0) to "flushAt",
            ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, flushInterval = Double.NaN) to "flushInterval",
            ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, overflow = "sometimes") to "overflow",
            ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fallbacks = "{not json") to "fallbacks",
            ClientOptions(apiKey = "not-a-key", endpoint = server.endpoint) to "apiKey",
            ClientOptions(endpoint = server.endpoint) to "apiKey",
        )
        for ((options, option) in bad) {
            val e = assertThrows<MeterlineException.ConfigException>(option) { Client(options) }
            assertEquals("invalid_config", e.code)
            assertEquals(option, e.option)
            assertTrue(e.detail.contains(option), e.detail)
        }
    }

    @Test
    fun `bad call arguments are ArgumentExceptions`() {
        val c = client()
        val e = assertThrows<MeterlineException.ArgumentException> { c.flush(-1.0) }
        assertEquals("invalid_argument", e.code)
        assertEquals("/timeout", e.path)
        assertTrue(e.isA("ValidationError") && !e.isA("ConfigError"))
        assertThrows<MeterlineException.ArgumentException> { c.cachedEntitlement("", "sso") }
        assertThrows<MeterlineException.ArgumentException> { c.primeEntitlements("[]") }
        assertThrows<MeterlineException.ArgumentException> { c.customerToken("c1", -5.0) }
        c.shutdown(0.0)
    }

    @Test
    fun `a server rejection reaches the listener as a RejectedException with the path`() {
        val type = "kt.rejected.${java.util.UUID.randomUUID().toString().take(8)}"
        server.admin("PUT", "schemas/$type", JSONObject("""{"type":"object","required":["n"]}"""))
        val recorder = Recorder()
        // fetchSchemas off: the client does not know the schema, so only the server refuses.
        val c = Client(ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fetchSchemas = false), recorder)
        c.track(type, "c1", """{"n": 1}""")
        val bad = c.track(type, "c1", """{"m": 1}""")
        c.flush(10.0)
        assertTrue(waitUntil { recorder.errors.isNotEmpty() }, "no error reported")
        val e = recorder.errors.first() as MeterlineException.RejectedException
        assertEquals("schema_violation", e.code)
        assertEquals(bad, e.eventId)
        assertTrue(e.isA("ValidationError"))
        assertEquals(1UL, c.stats().rejected)
        assertNull(server.events("type" to type).find { it.getString("id") == bad })
        c.shutdown()
    }
}
