// The lean lane of Client.track() (docs/decisions.md, "Kotlin `track()`: one packed call"):
// the five arguments packed into a per-thread native buffer and handed to Rust in one plain
// JNA direct-mapped call (`meterline_track_packed`, bindings-swift-kotlin/src/lean.rs), instead
// of uniffi's generated path (a handle clone, one `rustbuffer_alloc` call per string, and JNA
// Structures for every buffer and call status — tens of µs per call on the JVM). The event goes
// through the same Rust code as uniffi's `track`; errors come back in uniffi's serialization
// and are read by the generated converter, so callers see the same exceptions.
// scripts/uniffi-generate.sh routes the generated `Client.track` here (scripts/lean-track.py).
package dev.meterline

import com.sun.jna.Memory
import com.sun.jna.Native
import com.sun.jna.Pointer
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.CharBuffer
import java.nio.charset.CodingErrorAction

/** The packed lane's native entry points, JNA direct-mapped (primitive arguments only). */
internal object TrackLaneLib {
    init {
        uniffiEnsureInitialized() // loads and checks the library as the generated code does
        val name = System.getProperty("uniffi.component.meterline.libraryOverride") ?: "meterline_uniffi"
        Native.register(TrackLaneLib::class.java, name)
    }

    /** See bindings-swift-kotlin/src/lean.rs: the answer's encoding. */
    external fun meterline_track_packed(client: Long, buf: Pointer, len: Int, cap: Int): Int

    /** The error the last packed call kept because it did not fit its buffer. */
    external fun meterline_track_error(buf: Pointer, cap: Int): Int

    /** A bench floor: reads packed arguments, tracks nothing, returns their total length. */
    external fun meterline_packed_floor(buf: Pointer, len: Int): Int
}

/** One thread's buffer: native memory, a little-endian view of it, a strict UTF-8 encoder. */
internal class PackedBuffer(val capacity: Int) {
    val memory = Memory(capacity.toLong())
    val bytes: ByteBuffer = memory.getByteBuffer(0, capacity.toLong()).order(ByteOrder.LITTLE_ENDIAN)
    private val encoder = Charsets.UTF_8.newEncoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT)

    /** Packs the five arguments from the start; returns their length in bytes. */
    fun pack(type: String, subject: String, data: String, id: String?, time: String?): Int {
        bytes.clear()
        put(type)
        put(subject)
        put(data)
        put(id)
        put(time)
        return bytes.position()
    }

    /**
     * A length (-1 for null) and the UTF-8 bytes. `toByteArray` is the JDK's intrinsic (a copy,
     * for ASCII); it turns a lone surrogate into `?`, so text that is not ASCII or has a `?` is
     * also run through a strict encoder, which throws `MalformedInputException` for it as
     * uniffi's lowering does.
     */
    private fun put(s: String?) {
        if (s == null) {
            bytes.putInt(-1)
            return
        }
        val utf8 = s.toByteArray(Charsets.UTF_8)
        if (utf8.size != s.length || utf8.contains(QUESTION_MARK)) encoder.reset().encode(CharBuffer.wrap(s))
        bytes.putInt(utf8.size)
        bytes.put(utf8)
    }

    /** The UTF-8 text of `bytes[0, n)`. */
    fun text(n: Int): String {
        val raw = ByteArray(n)
        bytes.get(0, raw)
        return String(raw, Charsets.UTF_8)
    }

    /** The uniffi-serialized error in `bytes[0, n)`. */
    fun error(n: Int): MeterlineException {
        val view = bytes.duplicate().order(ByteOrder.BIG_ENDIAN)
        view.position(0).limit(n)
        return FfiConverterTypeMeterlineError.read(view)
    }

    companion object {
        private const val QUESTION_MARK = '?'.code.toByte()

        /** Most bytes a packing of these strings can take (3 per UTF-16 unit, 5 lengths). */
        fun bound(type: String, subject: String, data: String, id: String?, time: String?): Long =
            20L + 3L * (type.length + subject.length + data.length + (id?.length ?: 0) + (time?.length ?: 0))
    }
}

/** The packed lane of `Client.track()`. */
internal object TrackLane {
    /** Each thread's buffer is kept while it is at most this large. */
    private const val KEPT_BYTES = 64 * 1024
    private val buffers = ThreadLocal.withInitial { PackedBuffer(4 * 1024) }

    /** `Client.track()` for the client of [handle] (borrowed: the caller keeps it alive). */
    fun track(handle: Long, type: String, subject: String, data: String, id: String?, time: String?): String? {
        val need = PackedBuffer.bound(type, subject, data, id, time)
        require(need <= Int.MAX_VALUE) { "the event is too large to pass to the native library ($need bytes)" }
        var buf = buffers.get()
        if (need > buf.capacity) {
            buf = PackedBuffer(maxOf(need.toInt(), 2 * buf.capacity))
            if (buf.capacity <= KEPT_BYTES) buffers.set(buf)
        }
        val len = buf.pack(type, subject, data, id, time)
        val answer = TrackLaneLib.meterline_track_packed(handle, buf.memory, len, buf.capacity)
        return when {
            answer >= 0 -> buf.text(answer)
            answer == -1 -> null
            answer == Int.MIN_VALUE -> throw InternalException("meterline_track_packed: malformed arguments")
            answer == Int.MIN_VALUE + 1 -> throw InternalException("Rust panic")
            else -> throw errorOf(buf, -answer - 2)
        }
    }

    /** The error of the last packed call, [size] bytes: in [buf], or kept by Rust if larger. */
    private fun errorOf(buf: PackedBuffer, size: Int): MeterlineException {
        if (size <= buf.capacity) return buf.error(size)
        val large = PackedBuffer(size)
        val n = TrackLaneLib.meterline_track_error(large.memory, large.capacity)
        if (n < 0) throw InternalException("meterline_track_error: no error kept")
        return large.error(n)
    }
}
