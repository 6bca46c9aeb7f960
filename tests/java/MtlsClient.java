// A Java TLS client for the interop tests, as a WSO2 gateway connects to a backend:
// Java's KeyManager presents the keystore's identity, PKIX verifies the server.
// Usage: java MtlsClient.java KEYSTORE STOREPASS TRUSTSTORE TRUSTPASS PORT
// Sends one HTTP GET to https://localhost:PORT/java and prints the status line and body.
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class MtlsClient {
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
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory()
                .createSocket("localhost", Integer.parseInt(args[4]))) {
            SSLParameters params = socket.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");  // check the host name
            socket.setSSLParameters(params);
            OutputStream out = socket.getOutputStream();
            out.write(("GET /java HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = socket.getInputStream();
            System.out.print(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }
}
