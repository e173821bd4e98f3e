package dev.netchan

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/**
 * TLS from Kotlin (docs/SECURITY.md): certificates made by `netchan cert`,
 * mutual TLS over tls://127.0.0.1, a client without a certificate refused
 * with ClientCertRequired, plaintext beyond this host refused unless
 * `insecure`, access rules, TLS settings and shared keys replaced at run
 * time.
 */
class TlsTest {
    private val cli = File(System.getProperty("netchan.cli", "../../../target/debug/netchan"))

    /** A directory with a CA and `server` and `client` certificates. */
    private fun certs(): File {
        val dir = Files.createTempDirectory("netchan-kt-tls").toFile()
        for (name in listOf("server", "client")) {
            val p = ProcessBuilder(cli.path, "cert", name, "--dir", dir.path).redirectErrorStream(true).start()
            assertTrue("netchan cert $name did not exit", p.waitFor(30, TimeUnit.SECONDS))
            assertEquals(p.inputStream.bufferedReader().readText(), 0, p.exitValue())
        }
        return dir
    }

    @Test
    fun mutualTlsCarriesRequestsAndRefusesAClientWithoutACertificate() = watchdog {
        assumeTrue("the netchan CLI is built", cli.canExecute())
        val d = certs()
        try {
            val serverTls = TlsSettings(
                cert = File(d, "server.pem").path,
                key = File(d, "server-key.pem").path,
                // The PEM text itself, as an app embedding it would pass it.
                ca = File(d, "ca.pem").readText(),
                clientAuth = "required",
            )
            Endpoint.withConfig(EndpointConfig(name = "server", tls = serverTls)).use { server ->
                server.serve("echo") { req -> req.payload }
                val addr = server.listen("tls://127.0.0.1:0")
                assertTrue(addr, addr.startsWith("tls://127.0.0.1:"))
                val clientTls = TlsSettings(
                    ca = File(d, "ca.pem").path,
                    cert = File(d, "client.pem").path,
                    key = File(d, "client-key.pem").path,
                )
                Endpoint.withConfig(EndpointConfig(name = "client", tls = clientTls)).use { client ->
                    assertEquals("cert:server", client.connect(addr).identity)
                    assertEquals(listOf("cert:client"), server.peers().map { it.identity })
                    assertEquals("over tls", client.requestText("echo", "over tls"))
                }
                val anonymous = EndpointConfig(name = "kt-tls-anon", tls = TlsSettings(ca = File(d, "ca.pem").path))
                Endpoint.withConfig(anonymous).use { anon ->
                    expectError<NetchanException.ClientCertRequired> { anon.connect(addr) }
                }
            }
        } finally {
            d.deleteRecursively()
        }
    }

    @Test
    fun plaintextBeyondThisHostNeedsInsecure() = watchdog {
        Endpoint("kt-plain").use { ep ->
            val e = expectError<NetchanException.PlaintextRefused> { ep.listen("tcp://0.0.0.0:0") }
            assertTrue(e.detail, e.detail.contains("insecure"))
        }
        Endpoint.withConfig(EndpointConfig(name = "kt-open", insecure = true)).use { ep ->
            assertTrue(ep.listen("tcp://0.0.0.0:0").startsWith("tcp://0.0.0.0:"))
        }
        // The same by name, as the CLI's -o takes it; a bad setting is named.
        Endpoint.withConfig(EndpointConfig(name = "kt-open2", settings = mapOf("insecure" to "true"))).use { ep ->
            ep.listen("tcp://0.0.0.0:0")
        }
        val bad = expectError<NetchanException.InvalidArgument> {
            Endpoint.withConfig(EndpointConfig(tls = TlsSettings(clientAuth = "sometimes"))).close()
        }
        assertTrue(bad.detail, bad.detail.contains("tls.client_auth"))
    }

    @Test
    fun tlsSettingsAndSharedKeysAreReplacedAtRunTime() = watchdog {
        assumeTrue("the netchan CLI is built", cli.canExecute())
        val d = certs()
        try {
            // Named as its certificate was issued: peers accept only that name.
            Endpoint("server").use { server ->
                expectError<NetchanException> { server.listen("tls://127.0.0.1:0") } // no TLS yet
                server.setTls(TlsSettings(cert = File(d, "server.pem").path, key = File(d, "server-key.pem").readText()))
                val addr = server.listen("tls://127.0.0.1:0")
                val clientTls = EndpointConfig(name = "kt-rt-c1", tls = TlsSettings(ca = File(d, "ca.pem").path))
                Endpoint.withConfig(clientTls).use { c -> assertEquals("cert:server", c.connect(addr).identity) }
                // A certificate that is not there: refused, named; the settings stay.
                val bad = expectError<NetchanException.InvalidArgument> {
                    server.setTls(TlsSettings(cert = File(d, "nope.pem").path, key = File(d, "server-key.pem").path))
                }
                assertTrue(bad.detail, bad.detail.contains("nope.pem"))
                Endpoint.withConfig(clientTls.copy(name = "kt-rt-c2")).use { c -> c.connect(addr) }
                server.setTls(null) // removed: a new tls:// listener is refused
                expectError<NetchanException> { server.listen("tls://127.0.0.1:0") }
            }
            val keys = File(d, "app.keys")
            val p = ProcessBuilder(cli.path, "keygen", "rt1", "--out", keys.path).redirectErrorStream(true).start()
            assertTrue("netchan keygen did not exit", p.waitFor(30, TimeUnit.SECONDS))
            assertEquals(0, p.exitValue())
            Endpoint("kt-psk-server").use { server ->
                server.setSharedKeys(keys.path)
                val addr = server.listen("tcp://127.0.0.1:0")
                Endpoint("kt-psk-plain").use { plain -> expectError<NetchanException> { plain.connect(addr) } }
                val keyed = EndpointConfig(name = "kt-psk-keyed", settings = mapOf("psk" to keys.path))
                Endpoint.withConfig(keyed).use { c -> assertEquals("key:rt1", c.connect(addr).identity) }
                expectError<NetchanException.InvalidArgument> { server.setSharedKeys(File(d, "missing.keys").path) }
                server.setSharedKeys(null)
                Endpoint("kt-psk-plain2").use { plain -> plain.connect(addr) }
            }
        } finally {
            d.deleteRecursively()
        }
    }

    @Test
    fun accessRulesChangeAtRunTime() = watchdog {
        // Over loopback TCP without keys a peer is `anonymous` (docs/SECURITY.md).
        Endpoint("kt-acl-server").use { server ->
            server.serve("echo/*") { req -> req.payload }
            val addr = server.listen("tcp://127.0.0.1:0")
            Endpoint("kt-acl-client").use { client ->
                client.connect(addr)
                server.setAcl("allow anonymous request echo/public\n")
                assertEquals("hi", client.requestText("echo/public", "hi"))
                expectError<NetchanException.PermissionDenied> { client.requestText("echo/secret", "hi") }
                assertEquals(1uL, server.stats().total.denied)
                // Bad rules are an error naming the line; the rules in use stay.
                val bad = expectError<NetchanException.InvalidArgument> { server.setAcl("allow anonymous shout **") }
                assertTrue(bad.detail, bad.detail.contains("line 1"))
                expectError<NetchanException.PermissionDenied> { client.requestText("echo/secret", "hi") }
                server.reloadKeys()
                server.setAcl(null)
                assertEquals("ok", client.requestText("echo/secret", "ok"))
                assertEquals(emptyList<FailedAttempts>(), server.failedAttempts())
            }
        }
    }
}
