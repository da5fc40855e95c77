// entitlement() (suspend and blocking), cachedEntitlement(), the stream keeping the cache
// current, stale and fallback answers while the server is away, and a publishable key with
// a customer token — against a real meterline-server.
package dev.meterline

import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EntitlementsTest {
    private lateinit var server: TestServer

    @BeforeAll
    fun start() {
        server = TestServer.start()
    }

    @AfterAll
    fun stop() {
        server.close()
    }

    private fun subject() = "kt-${java.util.UUID.randomUUID().toString().take(12)}"

    private fun options() = ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fetchSchemas = false)

    @Test
    fun `entitlement suspends on a miss, then answers from the cache, blocking or not`(): Unit = runBlocking {
        val cat = Catalog(server)
        val subject = subject()
        cat.setPlan(server, subject, cat.pro)
        val c = Client(options().copy(stream = false))
        // 50 concurrent suspended callers, one coroutine thread: none blocks it.
        val answers = (0 until 50).map { async { c.entitlement(subject, cat.sso) } }.awaitAll()
        assertTrue(answers.all { it.hasAccess && it.kind == FeatureKind.BOOLEAN }, "$answers")
        assertEquals(Source.FRESH, answers.first().source)
        assertEquals(Source.CACHE, c.entitlement(subject, cat.sso).source)
        val blocking = c.entitlementBlocking(subject, cat.tier)
        assertEquals(Source.CACHE, blocking.source)
        assertEquals(10, JSONObject(blocking.value!!).getInt("seats"))
        val metered = c.cachedEntitlement(subject, cat.calls)
        assertEquals(FeatureKind.METERED, metered.kind)
        assertEquals(1000.0, metered.limit)
        assertEquals(1000.0, metered.remaining)
        assertNotNull(metered.version)
        c.shutdown()
    }

    @Test
    fun `a plan change reaches the client over the stream`() {
        val cat = Catalog(server)
        val subject = subject()
        cat.setPlan(server, subject, cat.free)
        val recorder = Recorder()
        val c = Client(options(), recorder)
        val before = c.entitlementBlocking(subject, cat.sso)
        assertFalse(before.hasAccess)
        assertEquals("feature not in plan", before.reason)
        assertTrue(waitUntil(20_000) { (true to "connected") in recorder.connections }, "${recorder.connections}")
        assertTrue(waitUntil(20_000) { c.stats().streamConnected })
        cat.setPlan(server, subject, cat.pro)
        // The cache is updated by the stream: no fetch (the TTL is a minute).
        assertTrue(waitUntil(20_000) { c.cachedEntitlement(subject, cat.sso).hasAccess })
        val after = c.entitlementBlocking(subject, cat.sso)
        assertEquals(Source.CACHE, after.source)
        assertTrue(after.version!! > before.version!!)
        assertEquals(1UL, c.stats().cacheMisses)
        c.shutdown()
    }

    @Test
    fun `shutdown tells the listener the stream is no longer connected`() {
        val cat = Catalog(server)
        val subject = subject()
        cat.setPlan(server, subject, cat.free)
        val recorder = Recorder()
        val c = Client(options(), recorder)
        c.entitlementBlocking(subject, cat.sso)
        assertTrue(waitUntil(20_000) { (true to "connected") in recorder.connections }, "${recorder.connections}")
        c.shutdown()
        // shutdown() returns after the worker ended: the listener was called before.
        assertEquals(false to "client shutdown", recorder.connections.last(), "${recorder.connections}")
    }

    @Test
    fun `tracked usage cuts access locally and thresholds reach the listener`() {
        val cat = Catalog(server, limit = 3, thresholds = listOf(0.5, 1.0))
        val subject = subject()
        cat.setPlan(server, subject, cat.pro)
        val recorder = Recorder()
        val c = Client(options().copy(flushInterval = 3600.0), recorder)
        assertEquals(3.0, c.entitlementBlocking(subject, cat.calls).remaining)
        assertTrue(waitUntil(20_000) { c.stats().streamConnected })
        repeat(3) { c.track(cat.eventType, subject, """{"i":$it}""") }
        val local = c.entitlementBlocking(subject, cat.calls)
        assertEquals(Triple(false, 3.0, 0.0), Triple(local.hasAccess, local.usage, local.remaining))
        assertEquals(0UL, c.stats().sent)
        c.flush(10.0)
        assertTrue(waitUntil(20_000) { recorder.thresholds.any { it.threshold == 1.0 } }, "${recorder.thresholds}")
        val full = recorder.thresholds.first { it.threshold == 1.0 }
        assertEquals(listOf<Any>(subject, cat.calls, 3.0, 3.0), listOf<Any>(full.subject, full.feature, full.limit, full.usage))
        c.shutdown()
    }

    @Test
    fun `an unreachable server gives the configured fallbacks with the reason`(): Unit = runBlocking {
        val fallbacks = """{"features": {"sso": true, "tier": {"value": {"seats": 1}}}, "default": false}"""
        val c = Client(ClientOptions(apiKey = TEST_KEY, endpoint = refusedEndpoint(), fetchSchemas = false, fallbacks = fallbacks))
        val sso = c.entitlement("c1", "sso")
        assertEquals(listOf<Any?>(Source.FALLBACK, true, FeatureKind.BOOLEAN, null), listOf(sso.source, sso.hasAccess, sso.kind, sso.version))
        assertTrue(sso.reason!!.startsWith("server unreachable"), sso.reason)
        assertEquals(1, JSONObject(c.entitlementBlocking("c1", "tier").value!!).getInt("seats"))
        val other = c.entitlement("c1", "anything")
        assertFalse(other.hasAccess)
        assertEquals(3UL, c.stats().fallbackAnswers)
        assertThrows<MeterlineException.TimeoutException> {
            c.track("api.call", "c1", "{}")
            c.shutdown(0.1)
        }
    }

    @Test
    fun `cached answers are served stale after the server goes away`() {
        val own = TestServer.start()
        val subject = subject()
        val c: Client
        try {
            val cat = Catalog(own)
            cat.setPlan(own, subject, cat.pro)
            c = Client(ClientOptions(apiKey = own.secretKey, endpoint = own.endpoint, fetchSchemas = false, maxTtl = 0.2, stream = false))
            assertEquals(Source.FRESH, c.entitlementBlocking(subject, cat.sso).source)
            own.stop()
            assertTrue(waitUntil { c.entitlementBlocking(subject, cat.sso).source == Source.STALE })
            val answer = c.entitlementBlocking(subject, cat.sso)
            assertTrue(answer.hasAccess)
            assertEquals(FeatureKind.BOOLEAN, answer.kind)
            assertTrue(waitUntil { c.entitlementBlocking(subject, cat.sso).reason.orEmpty().startsWith("server unreachable") })
            assertTrue(c.stats().staleAnswers >= 2UL)
        } finally {
            own.close()
        }
        c.shutdown(0.1)
    }

    @Test
    fun `a publishable key with a customer token tracks and reads only its own subject`() {
        val cat = Catalog(server)
        val subject = subject()
        val other = subject()
        cat.setPlan(server, subject, cat.pro)
        cat.setPlan(server, other, cat.pro)
        val appType = "app.open.${java.util.UUID.randomUUID().toString().take(8)}"
        server.admin("PUT", "settings", JSONObject().put("client_event_types", JSONArray(listOf(appType))))
        val publishable = (server.admin("POST", "keys", JSONObject().put("kind", "publishable")) as JSONObject).getString("key")
        val backend = Client(options().copy(stream = false))
        val token = backend.customerToken(subject, 60.0)
        assertEquals(2, token.count { it == '.' })
        backend.shutdown()

        val recorder = Recorder()
        val app = Client(
            ClientOptions(apiKey = publishable, endpoint = server.endpoint, customerToken = token, fetchSchemas = false, stream = false),
            recorder,
        )
        val own = app.entitlementBlocking(subject, cat.sso)
        assertEquals(Source.FRESH to true, own.source to own.hasAccess)
        val foreign = app.entitlementBlocking(other, cat.sso)
        assertEquals(Source.FALLBACK to false, foreign.source to foreign.hasAccess)
        assertTrue(foreign.reason!!.startsWith("forbidden"), foreign.reason)

        val mine = app.track(appType, subject, """{"screen":"home"}""")
        val theirs = app.track(appType, other, """{"screen":"home"}""")
        app.flush(10.0)
        assertTrue(waitUntil { recorder.errors.any { it is MeterlineException.RejectedException } }, "${recorder.errors}")
        val refused = recorder.errors.first { it is MeterlineException.RejectedException }
        assertEquals("forbidden", refused.code)
        assertEquals(theirs, refused.eventId)
        assertEquals(listOf(mine), server.events("type" to appType).map { it.getString("id") })
        // Minting needs a secret key.
        val e = assertThrows<MeterlineException.ConfigException> { app.customerToken(subject, 60.0) }
        assertEquals("apiKey", e.option)
        app.shutdown()
        assertNull(server.events("type" to appType, "subject" to other).firstOrNull())
    }
}
