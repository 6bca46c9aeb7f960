// Encrypts secrets the way WSO2's cipher tool and carbon crypto do, for the secure-vault tests.
// Usage: java VaultEncrypt.java KEYSTORE STOREPASS ALIAS MODE PLAINTEXT [MODE PLAINTEXT]...
//   (KEYSTORE may be "-" when only key-given modes are used; the pseudo-job
//   "use:ALIAS PATH" switches to another keystore for the jobs after it)
//   MODE rsa:<transformation>            base64(Cipher(transformation).doFinal(utf8))
//        selfcontained:<transformation>  base64 of CipherMetaDataHolder JSON {"c","t","tp","tpd"}
//        aesgcm-store                    the cipher tool's -Dsymmetric value, the AES key being
//                                        the keystore's secret-key entry ALIAS
//        aesgcm-key:<hex key>            the same format with the given AES key (KEYSTORE unused)
//        internal-aesgcm:<key string>    SymmetricKeyInternalCryptoProvider's self-contained
//                                        value with [encryption] key (hex when 48/64 chars)
// Prints one value per line. JSON is written as Gson's default writer does (it escapes '=').
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.security.Key;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.util.Base64;
import java.util.HexFormat;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public class VaultEncrypt {
    static String b64(byte[] data) {
        return Base64.getEncoder().encodeToString(data);
    }

    static String gson(String... pairs) {  // {"k":"v",...} with Gson's HTML-safe escaping of '='
        StringBuilder out = new StringBuilder("{");
        for (int i = 0; i < pairs.length; i += 2) {
            if (i > 0) out.append(',');
            out.append('"').append(pairs[i]).append("\":\"")
               .append(pairs[i + 1].replace("=", "\\u003d")).append('"');
        }
        return out.append('}').toString();
    }

    static byte[] gcm(Key key, byte[] iv, byte[] plain) throws Exception {
        Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
        cipher.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(128, iv));
        return cipher.doFinal(plain);
    }

    public static void main(String[] args) throws Exception {
        char[] storePass = args[1].toCharArray();
        KeyStore keyStore = args[0].equals("-") ? null : KeyStore.getInstance(new File(args[0]), storePass);
        String alias = args[2];
        for (int i = 3; i + 1 < args.length; i += 2) {
            if (args[i].startsWith("use:")) {  // switch keystores: use:ALIAS PATH
                alias = args[i].substring(4);
                keyStore = KeyStore.getInstance(new File(args[i + 1]), storePass);
                continue;
            }
            System.out.println(encrypt(keyStore, storePass, alias, args[i], args[i + 1]));
        }
    }

    static String encrypt(KeyStore keyStore, char[] storePass, String alias, String mode, String text)
            throws Exception {
        String arg = mode.contains(":") ? mode.substring(mode.indexOf(':') + 1) : "";
        byte[] plain = text.getBytes(StandardCharsets.UTF_8);
        SecureRandom random = new SecureRandom();
        if (mode.startsWith("aesgcm-key:")) {
            byte[] iv = new byte[128];  // the cipher tool's SymmetricCipher: new byte[GCM_IV_LENGTH]
            random.nextBytes(iv);
            Key key = new SecretKeySpec(HexFormat.of().parseHex(arg), "AES");
            String json = gson("cipherText", b64(gcm(key, iv, plain)), "iv", b64(iv));
            return b64(json.getBytes(StandardCharsets.UTF_8));
        }
        if (mode.startsWith("internal-aesgcm:")) {
            byte[] keyBytes = (arg.length() == 64 || arg.length() == 48)
                ? HexFormat.of().parseHex(arg) : arg.getBytes(StandardCharsets.UTF_8);
            byte[] iv = new byte[128];
            random.nextBytes(iv);
            byte[] ct = gcm(new SecretKeySpec(keyBytes, "AES"), iv, plain);
            String inner = gson("cipher", b64(ct), "initializationVector", b64(iv));
            String outer = gson("c", b64(inner.getBytes(StandardCharsets.UTF_8)),
                                "t", "AES/GCM/NoPadding", "iv", b64(iv));
            return b64(outer.getBytes(StandardCharsets.UTF_8));
        }
        if (mode.equals("aesgcm-store")) {
            byte[] iv = new byte[128];
            random.nextBytes(iv);
            Key key = keyStore.getKey(alias, storePass);  // as SymmetricCipher does
            String json = gson("cipherText", b64(gcm(key, iv, plain)), "iv", b64(iv));
            return b64(json.getBytes(StandardCharsets.UTF_8));
        }
        Certificate certificate = keyStore.getCertificate(alias);
        Cipher cipher = Cipher.getInstance(arg);
        cipher.init(Cipher.ENCRYPT_MODE, certificate);  // the cipher tool encrypts with the cert
        byte[] encrypted = cipher.doFinal(plain);
        if (mode.startsWith("rsa:")) {
            return b64(encrypted);
        }
        if (mode.startsWith("selfcontained:")) {
            byte[] digest = MessageDigest.getInstance("SHA-1").digest(certificate.getEncoded());
            String json = gson("c", b64(encrypted), "t", arg,
                               "tp", HexFormat.of().withUpperCase().formatHex(digest), "tpd", "SHA-1");
            return b64(json.getBytes(StandardCharsets.UTF_8));
        }
        throw new IllegalArgumentException("unknown mode " + mode);
    }
}
