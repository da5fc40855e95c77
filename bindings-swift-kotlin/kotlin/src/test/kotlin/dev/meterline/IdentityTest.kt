// A publishable-key app's identity against a real meterline-server: a TokenProvider that
// refreshes an expired token (nothing lost, nothing stored twice), identify() switching users
// without leaking one's events or entitlements to the next, reset(), opt-out, and a provider
// that throws (counted and reported, never raised into track()).
package dev.meterline

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
import com.sun.net.httpserver.HttpServer
import java.net.InetSocketAddress
import java.util.Base64
import java.util.concurrent.atomic.AtomicInteger
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class IdentityTest {
    private lateinit var server: TestServer
    private lateinit var publishable: String

    /** An event type publishable keys may send (the project's `client_event_types`). */
    private lateinit var appType: String

    @BeforeAll
    fun start() {
        server = TestServer.start()
        appType = "app.open.${java.util.UUID.randomUUID().toString().take(8)}"
        server.admin("PUT", "settings", JSONObject().put("client_event_types", JSONArray(listOf(appType))))
        publishable = (server.admin("POST", "keys", JSONObject().put("kind", "publishable")) as JSONObject).getString("key")
    }

    @AfterAll
    fun stop() {
        server.close()
    }

    private fun subject() = "kt-${java.util.UUID.randomUUID().toString().take(12)}"

    private fun b64(data: ByteArray): String = Base64.getUrlEncoder().withoutPadding().encodeToString(data)

    private fun hmac(key: ByteArray, data: ByteArray): ByteArray =
        Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(key, "HmacSHA256")) }.doFinal(data)

    /**
     * A customer token as `customerToken()` mints it but with any [ttl] in seconds (negative:
     * expired beyond the server's leeway), signed with the secret key's token signing key.
     */
    private fun mint(subject: String, ttl: Long): String {
        val secret = server.secretKey
        val signingKey = hmac(secret.toByteArray(), "meterline customer token v1".toByteArray())
        val now = System.currentTimeMillis() / 1000
        val head = b64(JSONObject().put("alg", "HS256").put("typ", "JWT").put("kid", secret.split("_")[2]).toString().toByteArray())
        val claims = b64(JSONObject().put("sub", subject).put("iat", now).put("exp", now + ttl).toString().toByteArray())
        return "$head.$claims.${b64(hmac(signingKey, "$head.$claims".toByteArray()))}"
    }

    private fun appOptions() = ClientOptions(apiKey = publishable, endpoint = server.endpoint, fetchSchemas = false, stream = false)

    @Test
    fun `a token provider refreshes an expired token and every event is stored once`() {
        val user = subject()
        val calls = AtomicInteger()
        val provider = object : TokenProvider {
            override fun token(): String = mint(user, if (calls.incrementAndGet() == 1) -3600 else 600)
        }
        val app = Client(appOptions().copy(flushAt = 5, maxInFlight = 4), null, provider)
        val ids = (0 until 30).map { "$user-$it" }
        for (id in ids) assertEquals(id, app.track(appType, user, """{"screen":"home"}""", id))
        app.flush(10.0)
        val stats = app.stats()
        app.shutdown(5.0)
        assertEquals(Triple(30UL, 0UL, 0UL), Triple(stats.sent, stats.duplicates, stats.dropped), "$stats")
        assertEquals(2, calls.get(), "one call for the first token, one for every batch refused with it")
        assertEquals(ids.sorted(), server.events("type" to appType, "subject" to user).map { it.getString("id") }.sorted())
    }

    @Test
    fun `identify switches users without leaking one to the next, reset signs out`() {
        val (u1, u2) = subject() to subject()
        val app = Client(appOptions().copy(customerToken = mint(u1, 600), flushInterval = 3600.0))
        app.primeEntitlements(
            JSONObject().put("subject", u1).put("version", 1).put("ttl_ms", 600_000)
                .put("entitlements", JSONObject().put("export", JSONObject().put("kind", "boolean").put("has_access", true)))
                .toString(),
        )
        assertTrue(app.cachedEntitlement(u1, "export").hasAccess)
        val first = (0 until 3).map { app.track(appType, u1, "{}")!! }
        assertThrows<MeterlineException.ArgumentException> { app.identify(u2, mint("someone-else", 600)) }
        app.identify(u2, mint(u2, 600))
        assertEquals(Source.FALLBACK, app.cachedEntitlement(u1, "export").source, "u1's cached answer served after identify(u2)")
        val second = (0 until 3).map { app.track(appType, u2, "{}")!! }
        app.flush(10.0)
        val stats = app.stats()
        assertEquals(Triple(6UL, 0UL, 0UL), Triple(stats.sent, stats.rejected, stats.dropped), "$stats")
        app.reset()
        assertThrows<MeterlineException.ForbiddenException> { app.track(appType, u2, "{}") }
        app.shutdown(5.0)
        assertEquals(first.sorted(), server.events("type" to appType, "subject" to u1).map { it.getString("id") }.sorted())
        assertEquals(second.sorted(), server.events("type" to appType, "subject" to u2).map { it.getString("id") }.sorted())
        // A secret key acts for every subject: it has no identity to switch.
        val backend = Client(ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fetchSchemas = false, stream = false))
        assertEquals("apiKey", assertThrows<MeterlineException.ConfigException> { backend.identify(u1, mint(u1, 600)) }.option)
        backend.shutdown(5.0)
    }

    @Test
    fun `an opted-out client keeps and sends nothing until it opts in`() {
        val user = subject()
        val type = "opt.${java.util.UUID.randomUUID().toString().take(8)}"
        val c = Client(ClientOptions(apiKey = server.secretKey, endpoint = server.endpoint, fetchSchemas = false, stream = false, flushInterval = 3600.0))
        repeat(3) { assertNotNull(c.track(type, user, "{}")) }
        assertFalse(c.isOptedOut())
        c.optOut()
        assertTrue(c.isOptedOut())
        assertNull(c.track(type, user, "{}"))
        c.flush(5.0)
        assertEquals(4UL, c.stats().optedOut)
        assertEquals(0UL, c.stats().sent)
        assertEquals(emptyList<JSONObject>(), server.events("type" to type))
        c.optIn()
        val kept = c.track(type, user, "{}")
        c.shutdown(5.0)
        assertEquals(listOf(kept), server.events("type" to type).map { it.getString("id") })
    }

    @Test
    fun `a throwing token provider is counted and reported, never raised into track`() {
        val user = subject()
        val recorder = Recorder()
        val provider = object : TokenProvider {
            override fun token(): String = throw IllegalStateException("the identity backend is down")
        }
        val app = Client(appOptions().copy(flushInterval = 0.05), recorder, provider)
        assertNotNull(app.track(appType, user, "{}"), "track() keeps the event while no token can be had")
        assertTrue(waitUntil { recorder.errors.isNotEmpty() }, "the failure reached the listener")
        val stats = app.stats()
        assertThrows<MeterlineException.TimeoutException> { app.shutdown(0.2) }
        val error = recorder.errors.first()
        assertTrue(error is MeterlineException.AuthException, "$error")
        assertTrue(error.detail.contains("the identity backend is down"), error.detail)
        assertTrue(stats.tokenProviderFailures >= 1UL, "$stats")
        assertEquals(0UL, stats.dropped, "$stats")
        assertEquals(emptyList<JSONObject>(), server.events("type" to appType, "subject" to user))
    }

    @Test
    fun `every request names meterline-kotlin and the JVM`() {
        val agents = java.util.Collections.synchronizedList(mutableListOf<String>())
        val front = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        front.createContext("/") { exchange ->
            agents.add(exchange.requestHeaders.getFirst("User-Agent") ?: "(none)")
            exchange.sendResponseHeaders(503, -1)
            exchange.close()
        }
        front.start()
        try {
            val c = Client(ClientOptions(apiKey = server.secretKey, endpoint = "http://127.0.0.1:${front.address.port}", stream = false))
            c.track("kt.agent", subject(), "{}")
            assertTrue(waitUntil { agents.size >= 2 }, "$agents")
            runCatching { c.shutdown(0.1) }
        } finally {
            front.stop(0)
        }
        val want = "(JVM ${System.getProperty("java.version")}; linux x86_64)"
        for (agent in agents.toList()) {
            assertTrue(agent.startsWith("meterline-kotlin/") && agent.endsWith(want), "$agent does not end with $want")
        }
    }
}
