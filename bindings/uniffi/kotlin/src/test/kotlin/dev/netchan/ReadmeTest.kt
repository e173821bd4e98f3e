package dev.netchan

import kotlinx.coroutines.CoroutineExceptionHandler
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Test
import java.io.ByteArrayOutputStream
import java.io.PrintStream

/**
 * The README's Kotlin snippets, compiled from README.md by
 * tools/readme_snippets.py (package `readme.<snippet id>`), run here.
 */
class ReadmeTest {
    /** The snippets this class runs, by their README tag. */
    private val runs = setOf("quickstart", "app-lifecycle")

    @Test
    fun everyKotlinSnippetOfTheReadmeIsRunHere() {
        val dir = java.io.File(System.getProperty("netchan.readme.snippets"), "readme")
        val written = dir.listFiles { f -> f.name.endsWith(".kt") }!!.map { it.name.removeSuffix(".kt") }.toSet()
        assertEquals(runs, written)
    }

    @Test
    fun readmeQuickstartRunsAndPrintsWhatItSays() = watchdog {
        val out = ByteArrayOutputStream()
        val stdout = System.out
        System.setOut(PrintStream(out, true))
        try {
            readme.quickstart.main()
        } finally {
            System.setOut(stdout)
        }
        // What its comments say, in order.
        assertEquals(listOf("hello, greet/ana", "sensors/kitchen/temp 21.5"), out.toString().lines().filter { it.isNotEmpty() })
    }

    @Test
    fun readmeAppLifecycleSuspendsAndResumes() = watchdog {
        val errors = java.util.Collections.synchronizedList(ArrayList<Throwable>())
        val job = SupervisorJob()
        val scope = CoroutineScope(job + Dispatchers.Default + CoroutineExceptionHandler { _, e -> errors.add(e) })
        Endpoint("kt-readme-app").use { ep ->
            ep.listen(Addrs.tcp())
            val app = readme.app_lifecycle.NetchanLifecycle(ep, scope)
            app.onStop()
            eventually { ep.isSuspended() }
            app.onStart()
            eventually { !ep.isSuspended() }
            app.onNetworkAvailable()
            job.children.toList().forEach { it.join() }
            assertFalse(ep.isSuspended())
        }
        scope.cancel()
        assertEquals(emptyList<Throwable>(), errors.toList())
    }
}
