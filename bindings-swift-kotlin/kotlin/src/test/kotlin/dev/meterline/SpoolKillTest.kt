// The disk spool survives SIGKILL: a child JVM tracking events with `spoolDir` is killed
// with SIGKILL mid-stream (while batches are in flight to the real server), then a second
// run on the same directory tracks the rest and drains the spool. In the end the server
// holds every event a run reported accepted, none twice, and nothing no run tracked.
package dev.meterline

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit

class SpoolKillTest {
    private val total = 20_000

    private class Run(val accepted: MutableList<Int> = mutableListOf(), var replayed: Long? = null, var spoolLength: Long? = null, var exit: Int? = null)

    private fun runChild(server: TestServer, spool: File, eventType: String, start: Int, killAfter: Int?): Run {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val child = ProcessBuilder(
            java, "-cp", System.getProperty("java.class.path"), "dev.meterline.SpoolChildKt",
            server.secretKey, server.endpoint, spool.path, eventType, start.toString(), total.toString(),
        ).redirectError(File(spool.parentFile, "child-$start.err")).start()
        val run = Run()
        val watchdog = Thread {
            if (!child.waitFor(120, TimeUnit.SECONDS)) child.destroyForcibly()
        }.apply { isDaemon = true; start() }
        child.inputStream.bufferedReader().forEachLine { line ->
            val (word, value) = line.trim().split(" ", limit = 2)
            when (word) {
                "accepted" -> {
                    run.accepted.add(value.toInt())
                    // SIGKILL from outside: Process.destroyForcibly() would also close our
                    // end of its stdout before the lines already written are read.
                    if (killAfter != null && run.accepted.size == killAfter) {
                        ProcessBuilder("kill", "-KILL", child.pid().toString()).start().waitFor()
                    }
                }
                "replaying" -> run.replayed = value.toLong()
                "spool_length" -> run.spoolLength = value.toLong()
            }
        }
        run.exit = child.waitFor()
        watchdog.interrupt()
        return run
    }

    @Test
    fun `a child killed with SIGKILL mid-stream loses nothing it accepted and nothing is stored twice`() {
        TestServer.start().use { server ->
            val dir = Files.createTempDirectory("meterline-kotlin-spool-").toFile()
            try {
                val spool = File(dir, "spool")
                val eventType = "kt.spool.${java.util.UUID.randomUUID().toString().take(8)}"
                val killed = runChild(server, spool, eventType, 0, killAfter = 5_000)
                assertEquals(137, killed.exit, "the first run was killed by SIGKILL")
                assertTrue(killed.accepted.size >= 5_000)
                // The index the child was in when killed may be spooled without being reported.
                val next = killed.accepted.last() + 2
                val final = runChild(server, spool, eventType, next, killAfter = null)
                assertEquals(0, final.exit, File(dir, "child-$next.err").readText().takeLast(2000))
                assertEquals(0L, final.spoolLength)
                val stored = server.events("type" to eventType).map { it.getString("id") }
                assertEquals(stored.size, stored.toSet().size, "an id stored twice")
                val accepted = (killed.accepted + final.accepted).map(::spoolId).toSet()
                val attempted = accepted + spoolId(killed.accepted.last() + 1)
                assertEquals(emptySet<String>(), accepted - stored.toSet(), "accepted but lost")
                assertEquals(emptySet<String>(), stored.toSet() - attempted, "stored but never tracked")
                assertTrue(final.replayed!! >= 0)
            } finally {
                dir.deleteRecursively()
            }
        }
    }
}
