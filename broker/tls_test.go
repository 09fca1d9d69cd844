package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// TestConnectWithMutualTLS: WithTLS makes Connect verify the server by the
// CA file and present the client certificate a server demanding one needs;
// without it the connection is refused.
func TestConnectWithMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	caFile := filepath.Join(dir, "ca.crt")
	testkit.WriteFile(t, caFile, ca.CertPEM())
	certFile, keyFile := ca.IssueFiles(t, dir, "relay", x509.ExtKeyUsageClientAuth)
	srvPair, err := tls.X509KeyPair(ca.Issue(t, "nats", x509.ExtKeyUsageServerAuth))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{srvPair},
			ClientCAs:    ca.Pool(),
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		TLSVerify:  true,
		TLSTimeout: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("TLS server not ready")
	}
	url := "tls://" + srv.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, url, zerolog.Nop(), broker.WithTLS(caFile, certFile, keyFile))
	if err != nil {
		t.Fatalf("Connect with TLS: %v", err)
	}
	if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete {
		t.Errorf("connection is not TLS: %v", err)
	}
	nc.Close()

	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if nc, err := broker.Connect(short, url, zerolog.Nop(), broker.WithTLS(caFile, "", "")); err == nil {
		nc.Close()
		t.Error("connected without the client certificate the server demands")
	}
}
