// options.json's cases as Kotlin builds them, shared by VectorsTest and its child JVM (the
// cases that set environment variables run in a child process: a JVM cannot change its own).
package dev.meterline

import org.json.JSONArray
import org.json.JSONObject
import java.io.File
import java.util.concurrent.TimeUnit

/** The option table of options.json, by snake_case name. */
fun optionTable(): Map<String, JSONObject> =
    vector("options.json").getJSONArray("table").let { t -> (0 until t.length()).associate { t.getJSONObject(it).let { r -> r.getString("snake") to r } } }

/**
 * A case's options as a [ClientOptions] (camelCase, durations in seconds), or the name of
 * the first option whose value Kotlin's types cannot hold (a number for `apiKey` …) or that
 * has no field (an unknown option): the compiler refuses such a call before the core could.
 */
fun kotlinOptions(case: JSONObject): Pair<ClientOptions?, String?> {
    val table = optionTable()
    val given = case.getJSONObject("options")
    var o = ClientOptions()
    for (snake in given.keySet()) {
        val row = table[snake] ?: return null to snake
        val v = given.get(snake)
        val camel = row.getString("camel")
        o = when (row.getString("type")) {
            "string", "path", "choice" -> (v as? String)?.let { o.with(camel, it) }
            "boolean" -> (v as? Boolean)?.let { o.with(camel, it) }
            "count" -> (v as? Number)?.takeIf { it.toDouble() == it.toLong().toDouble() }?.let { o.with(camel, it.toLong()) }
            // The cases write durations in milliseconds; Kotlin takes seconds.
            "duration" -> (v as? Number)?.let { o.with(camel, it.toDouble() / 1000.0) }
            else -> if (v is JSONObject || v is JSONArray) o.with(camel, v.toString()) else null
        } ?: return null to camel
    }
    return o to null
}

/** `ok`, or `<class> <code> <option> :<detail>` of the exception the constructor threw. */
fun outcome(options: ClientOptions): String = try {
    Client(options).shutdown(0.0)
    "ok"
} catch (e: MeterlineException) {
    "${e.errorClassName} ${e.code} ${e.option} :${e.detail}"
}

/** [ClientOptions] with the field called [camel] set, or null when its type cannot hold [value]. */
private fun ClientOptions.with(camel: String, value: Any): ClientOptions? {
    val field = ClientOptions::class.java.getDeclaredField(camel)
    val fits = when (value) {
        is String -> field.type == String::class.java
        is Boolean -> field.type == java.lang.Boolean::class.java
        is Long -> field.type == java.lang.Long::class.java
        is Double -> field.type == java.lang.Double::class.java
        else -> false
    }
    if (!fits) return null
    val copy = this.copy()
    field.isAccessible = true
    field.set(copy, value)
    return copy
}

/** Runs options.json's case [kind]/[index] in a child JVM with [env] applied; its outcome. */
fun inChildJvm(kind: String, index: Int, env: JSONObject): String {
    val java = File(System.getProperty("java.home"), "bin/java").path
    val builder = ProcessBuilder(java, "-Dmeterline.repo=${REPO.path}", "-cp", System.getProperty("java.class.path"), "dev.meterline.OptionCasesKt", kind, index.toString())
    builder.environment().remove("METERLINE_ENDPOINT")
    for (name in env.keySet()) {
        if (env.isNull(name)) builder.environment().remove(name) else builder.environment()[name] = env.getString(name)
    }
    val child = builder.redirectErrorStream(true).start()
    val out = child.inputStream.bufferedReader().readText().trim()
    check(child.waitFor(60, TimeUnit.SECONDS)) { "the child JVM hung" }
    return out.lines().last()
}

/** The child JVM's entry: prints the outcome of options.json's case `args[0]`/`args[1]`. */
fun main(args: Array<String>) {
    val case = vector("options.json").getJSONArray(args[0]).getJSONObject(args[1].toInt())
    val (options, unfit) = kotlinOptions(case)
    println(if (options == null) "unfit $unfit" else outcome(options))
}
