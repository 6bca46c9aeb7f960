// A Java TLS peer for the interop tests: Java's own KeyManager and TrustManager, with
// client authentication required, as a WSO2 backend or gateway would run.
// Usage: java MtlsServer.java KEYSTORE STOREPASS TRUSTSTORE TRUSTPASS
// Prints its port, then for each connection answers the client certificate's subject.
import java.io.File;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class MtlsServer {
    public static void main(String[] args) throws Exception {
        char[] storePass = args[1].toCharArray();
        KeyStore keyStore = KeyStore.getInstance(new File(args[0]), storePass);
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
        kmf.init(keyStore, storePass);
        KeyStore trustStore = KeyStore.getInstance(new File(args[2]), args[3].toCharArray());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(trustStore);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        SSLServerSocket server =
            (SSLServerSocket) context.getServerSocketFactory().createServerSocket(0);
        server.setNeedClientAuth(true);
        System.out.println(server.getLocalPort());
        System.out.flush();
        while (true) {
            try (SSLSocket socket = (SSLSocket) server.accept()) {
                socket.startHandshake();
                X509Certificate peer =
                    (X509Certificate) socket.getSession().getPeerCertificates()[0];
                OutputStream out = socket.getOutputStream();
                out.write((peer.getSubjectX500Principal().getName() + "\n")
                    .getBytes(StandardCharsets.UTF_8));
                out.flush();
            } catch (Exception e) {
                System.err.println("refused: " + e);
            }
        }
    }
}
