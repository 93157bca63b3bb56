package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahub/wahub/plugins/internal/stream/streamtest"
	"github.com/wahub/wahub/plugins/kafka"
	"github.com/wahub/wahub/sdk"
)

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1 and
// returns the server's TLS config and the certificate's PEM file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pemFile
}

func TestTLS(t *testing.T) {
	srvTLS, ca := selfSigned(t)
	cl := startCluster(t, []string{"secure"}, kfake.TLS(srvTLS))
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "secure", "tls": map[string]any{"ca_file": ca}})
	if o := streamtest.Outcomes(c.Deliver(context.Background(), streamtest.Events(3, 1, sdk.TypeMessageReceived))); o[sdk.Delivered] != 3 {
		t.Fatalf("over TLS: %v", o)
	}
	// Without the CA the server is not trusted: nothing is delivered.
	c = streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "secure", "tls": map[string]any{}, "delivery_timeout": "1s"})
	if o := streamtest.Outcomes(c.Deliver(context.Background(), streamtest.Events(1, 1, sdk.TypeMessageReceived))); o[sdk.Delivered] != 0 {
		t.Fatalf("an untrusted server got the event: %v", o)
	}
}
