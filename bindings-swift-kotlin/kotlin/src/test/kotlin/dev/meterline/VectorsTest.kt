// The shared conformance vectors (tests/vectors/*.json) through the public Kotlin API:
// events.json through track(), options.json through Client(ClientOptions), errors.json
// against the exception classes and the errors public calls throw, and entitlements.json's
// `primed` answers through primeEntitlements() + cachedEntitlement()/entitlement(). The
// decisions no public call exposes (retry.json, stream.json …) are the core's to run.
package dev.meterline

import kotlinx.coroutines.runBlocking
import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.fail

/** A JSON value of a vector as JSON text (what track() takes). */
fun jsonText(value: Any?): String = when (value) {
    null, JSONObject.NULL -> "null"
    is String -> JSONObject.quote(value)
    else -> value.toString()
}

class VectorsTest {
    private val events = vector("events.json")

    @TestFactory
    fun `events json through track`(): List<DynamicTest> = listOf("track" to false, "strict_track" to true).flatMap { (cases, strict) ->
        // Nothing is delivered (the endpoint refuses): these cases are about track() alone.
        val client = Client(
            ClientOptions(
                apiKey = TEST_KEY, endpoint = refusedEndpoint(), fetchSchemas = false, strictTypes = strict,
                schemas = events.getJSONObject("schemas").toString(), flushInterval = 3600.0,
            ),
        )
        val all = events.getJSONArray(cases)
        (0 until all.length()).map { i ->
            val c = all.getJSONObject(i)
            dynamicTest("$cases: ${c.getString("name")}") {
                val input = c.getJSONObject("input")
                val expect = c.getJSONObject("expect")
                val call = {
                    client.track(
                        input.getString("type"), input.getString("subject"), jsonText(input.opt("data")),
                        if (input.has("id")) input.getString("id") else null,
                        if (input.has("time")) input.getString("time") else null,
                    )
                }
                if (expect.getBoolean("ok")) {
                    val id = call()
                    if (input.has("id")) assertEquals(input.getString("id"), id) else assertTrue(id!!.isNotEmpty())
                } else {
                    val e = assertThrows<MeterlineException.ValidationException> { call() }
                    assertEquals(expect.getString("code"), e.code, e.detail)
                    assertEquals(expect.getString("path"), e.path, e.detail)
                }
            }
        } + dynamicTest("$cases: shutting down gives up what the refused endpoint could not take") {
            val accepted = (0 until all.length()).count { all.getJSONObject(it).getJSONObject("expect").getBoolean("ok") }
            assertEquals(accepted.toULong(), client.stats().enqueued)
            assertThrows<MeterlineException.TimeoutException> { client.shutdown(0.01) }
            assertThrows<MeterlineException.ClosedException> { client.track("api.call", "c1", "{}") }
        }
    }

    private val options = vector("options.json")
    private val table = optionTable()

    @TestFactory
    fun `options json through the constructor`(): List<DynamicTest> {
        val valid = options.getJSONArray("valid")
        val invalid = options.getJSONArray("invalid")
        return (0 until valid.length()).map { i ->
            val c = valid.getJSONObject(i)
            dynamicTest("valid: ${c.getString("name")}") {
                if (c.has("env")) return@dynamicTest assertEquals("ok", inChildJvm("valid", i, c.getJSONObject("env")))
                val (o, unfit) = kotlinOptions(c)
                assertEquals(null, unfit)
                val client = Client(o!!)
                client.shutdown(0.0)
                assertEquals(0UL, client.stats().enqueued)
            }
        } + (0 until invalid.length()).map { i ->
            val c = invalid.getJSONObject(i)
            val expect = c.getJSONObject("expect")
            dynamicTest("invalid: ${c.getString("name")}") {
                val want = if (expect.optBoolean("unknown")) expect.getString("option") else table.getValue(expect.getString("option")).getString("camel")
                val (o, unfit) = kotlinOptions(c)
                if (o == null) {
                    // A value of the wrong type, or an option ClientOptions has no field for:
                    // Kotlin's compiler refuses it before the core could.
                    assertEquals(want, unfit, "the option the case gets wrong")
                    return@dynamicTest
                }
                val outcome = if (c.has("env")) {
                    inChildJvm("invalid", i, c.getJSONObject("env"))
                } else {
                    outcome(o)
                }
                assertEquals("${expect.getString("class")} ${expect.getString("code")} $want", outcome.substringBefore(" :"))
                assertTrue(outcome.substringAfter(" :").contains(want), outcome)
            }
        }
    }

    @Test
    fun `ClientOptions has one field per option of the table, camelCase`() {
        val fields = ClientOptions::class.java.declaredFields
            .filter { !java.lang.reflect.Modifier.isStatic(it.modifiers) }.map { it.name }.toSet()
        assertEquals(table.values.map { it.getString("camel") }.toSet(), fields)
    }

    private val errors = vector("errors.json")

    @Test
    fun `the exception classes are the core list`() {
        val classes = errors.getJSONArray("classes")
        val want = (0 until classes.length()).map { classes.getJSONObject(it) }
            .map { Triple(it.getString("name"), it.optString("parent").ifEmpty { null }, it.getString("default_code")) }
        assertEquals(want, errorClasses().map { Triple(it.name, it.parent, it.defaultCode) })
        val subclasses = MeterlineException::class.java.declaredClasses.filter { MeterlineException::class.java.isAssignableFrom(it) }
        assertEquals(want.size, subclasses.size, "$subclasses")
        for ((name, _, code) in want) {
            val e = errorOfClass(name, code) ?: fail("no class $name")
            assertEquals(name, e.errorClassName)
            assertEquals(code, e.code)
            assertTrue(e.isA("MeterlineError"))
        }
        assertTrue(errorOfClass("ForbiddenError", "forbidden")!!.isA("AuthError"))
    }

    @Test
    fun `public calls throw the class errors json names for their code`() {
        val cases = errors.getJSONArray("cases")
        val classOf = (0 until cases.length()).associate { cases.getJSONObject(it).let { c -> "${c.getString("source")}:${c.getString("code")}" to c.getString("class") } }
        val client = Client(ClientOptions(apiKey = TEST_KEY, endpoint = refusedEndpoint(), fetchSchemas = false, flushInterval = 3600.0))
        client.track("api.call", "c1", """{"n":1}""")
        val got = mutableMapOf<String, MeterlineException>()
        got["config:invalid_config"] = assertThrows { Client(ClientOptions(apiKey = TEST_KEY, endpoint = refusedEndpoint(), flushAt = 0)) }
        got["validation:invalid_event"] = assertThrows { client.track("api.call", "c1", "[]") }
        got["validation:invalid_argument"] = assertThrows { client.cachedEntitlement("", "sso") }
        got["timeout:timeout"] = assertThrows { client.flush(0.01) }
        assertThrows<MeterlineException> { client.shutdown(0.01) }
        got["closed:client_closed"] = assertThrows { client.track("api.call", "c1", "{}") }
        for ((key, e) in got) {
            assertEquals("${classOf.getValue(key)}:${key.substringAfter(':')}", "${e.errorClassName}:${e.code}", key)
        }
    }

    private val entitlements = vector("entitlements.json")

    @TestFactory
    fun `entitlements json primed answers`(): List<DynamicTest> {
        val primed = entitlements.getJSONArray("primed")
        val payloads = entitlements.getJSONObject("primed_payloads")
        return (0 until primed.length()).map { i ->
            val c = primed.getJSONObject(i)
            dynamicTest(c.getString("name")) {
                val client = Client(ClientOptions(apiKey = TEST_KEY, endpoint = refusedEndpoint(), fetchSchemas = false, stream = false))
                val prime = c.getJSONArray("prime")
                for (j in 0 until prime.length()) client.primeEntitlements(payloads.getJSONObject(prime.getString(j)).toString())
                val want = c.getJSONObject("expect")
                matches(c.getString("name"), client.cachedEntitlement(c.getString("subject"), c.getString("feature")), want)
                runBlocking { matches(c.getString("name"), client.entitlement(c.getString("subject"), c.getString("feature")), want) }
                client.shutdown(0.0)
            }
        }
    }

    /** Every key of [want] (snake_case) matches the answer's field. */
    private fun matches(ctx: String, got: EntitlementAnswer, want: JSONObject) {
        for (key in want.keySet()) {
            val w = want.get(key)
            val g: Any? = when (key) {
                "subject" -> got.subject
                "feature" -> got.feature
                "kind" -> got.kind?.name?.lowercase()
                "has_access" -> got.hasAccess
                "limit" -> got.limit
                "usage" -> got.usage
                "remaining" -> got.remaining
                "value" -> got.value
                "period_end" -> got.periodEnd
                "version" -> got.version
                "source" -> got.source.name.lowercase()
                "reason" -> got.reason
                else -> fail("$ctx: the answer has no $key")
            }
            when {
                w == JSONObject.NULL -> assertEquals(null, g, "$ctx.$key")
                w is Number -> assertEquals(w.toDouble(), if (g is ULong) g.toDouble() else (g as Number).toDouble(), "$ctx.$key")
                key == "value" -> assertTrue(JSONObject("{\"v\":$g}").similar(JSONObject().put("v", w)), "$ctx.$key: $g vs $w")
                else -> assertEquals(w, g, "$ctx.$key")
            }
        }
    }
}

