// What every MeterlineException carries, readable on the sealed base class. uniffi generates
// one subclass per class of the core's error list (MeterlineException.ValidationException …),
// each with these fields; the base class itself declares none, so these read them from
// whichever subclass an exception is. The `when` is exhaustive: a new error class in the
// core fails this file's compilation until it is added here.
package dev.meterline

/** The error's fields, whatever its class. */
private class Details(val code: String, val detail: String, val path: String?, val option: String?, val status: UShort?, val eventId: String?)

private val MeterlineException.details: Details
    get() = when (this) {
        is MeterlineException.GenericException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.ValidationException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.RejectedException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.ArgumentException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.ConfigException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.AuthException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.ForbiddenException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.TimeoutException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.QueueFullException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.ClosedException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.NetworkException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.ServerException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.CodecException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.StreamException -> Details(code, detail, path, option, status, eventId)
        is MeterlineException.SpoolException -> Details(code, detail, path, option, status, eventId)
    }

/** Stable, machine-readable code (the HTTP API's spelling): `schema_violation`, `timeout` … */
val MeterlineException.code: String get() = details.code

/** What was wrong, in words. */
val MeterlineException.detail: String get() = details.detail

/** JSON pointer of the offending value (validation errors and server rejections). */
val MeterlineException.path: String? get() = details.path

/** The option at fault, camelCase (configuration errors). */
val MeterlineException.option: String? get() = details.option

/** HTTP status, when the server answered with an error. */
val MeterlineException.status: UShort? get() = details.status

/** Id of the event a server rejection is about. */
val MeterlineException.eventId: String? get() = details.eventId

/**
 * Whether this exception is of the core's error class [className] or a subclass of it, as
 * Python and JavaScript see the hierarchy (`ArgumentError` is a `ValidationError`, every
 * class a `MeterlineError`).
 */
fun MeterlineException.isA(className: String): Boolean {
    val parents = errorClasses().associate { it.name to it.parent }
    var name: String? = errorClassName
    while (name != null) {
        if (name == className) return true
        name = parents[name]
    }
    return false
}

/** The core's name of this exception's class (`ValidationError` …). */
val MeterlineException.errorClassName: String
    get() = when (this) {
        is MeterlineException.GenericException -> "MeterlineError"
        else -> this::class.simpleName!!.removeSuffix("Exception") + "Error"
    }
