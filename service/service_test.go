package service_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

// fixture is a service configuration with keys from an emulator that
// signs the test packages.
type fixture struct {
	emu *emulator.Server
	cfg service.Config
	log *testkit.LogBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	jwks, err := emu.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		emu: emu,
		log: &testkit.LogBuffer{},
		cfg: service.Config{
			ListenAddr:    "127.0.0.1:0",
			AdminAddr:     "127.0.0.1:0",
			WebhookPath:   "/webhooks/upvest",
			SubjectPrefix: "upvest",
			SourceBase:    "https://sandbox.upvest.co",
			MaxBodyBytes:  1 << 20,
			Keys:          keys,
			DataDir:       t.TempDir(),
			Stream: broker.StreamOptions{
				Name: "UPVEST", Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Minute,
			},
		},
	}
}

// start runs the service and returns it once its listeners are open.
func (f *fixture) start(t *testing.T) *service.Service {
	t.Helper()
	svc, err := service.New(f.cfg, zerolog.New(f.log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-svc.Started():
	case err := <-done:
		t.Fatalf("Run ended before starting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not started within 30s")
	}
	return svc
}

// post sends a package of one event, signed as Upvest signs, over client
// to url, and returns the status and body.
func (f *fixture) post(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	ev := emulator.NewGenerator(uint64(time.Now().UnixNano())).Batch(1)[0]
	obj, _ := json.Marshal(ev.Object)
	body := fmt.Appendf(nil, `{"payload":[{"id":%q,"created_at":%q,"type":%q,"object":%s,"webhook_id":"w1"}]}`,
		ev.ID, ev.CreatedAt.Format(time.RFC3339Nano), ev.Type, obj)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := f.emu.SignDelivery(req, body); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStartsWithNATSUnreachable: with NATS not there, the listeners open
// at once, /healthz is 200, /readyz is 503 naming NATS and answers fast,
// the ingress answers 503, every failed attempt is logged with the URL;
// once NATS comes, the stream is created and packages are stored.
func TestStartsWithNATSUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	port := brokertest.FreePorts(t, 1)[0]
	f.cfg.NATSURL = fmt.Sprintf("nats://relay:secret@127.0.0.1:%d", port)
	svc := f.start(t)
	admin := "http://" + svc.AdminAddr()

	if code, _ := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
	start := time.Now()
	code, body := get(t, admin+"/readyz")
	took := time.Since(start)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"nats":{"ok":false`) {
		t.Errorf("/readyz = %d %s, want 503 naming nats", code, body)
	}
	// The checks are bounded by 200 ms; a second leaves room for a loaded
	// machine and still catches a check that waits for NATS (2 s before).
	if took > time.Second {
		t.Errorf("/readyz took %s with NATS down", took)
	}
	code, body = f.post(t, http.DefaultClient, "http://"+svc.IngressAddr()+"/webhooks/upvest")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not_ready") || !strings.Contains(body, "NATS not connected") {
		t.Errorf("ingress = %d %s, want 503 not_ready naming NATS", code, body)
	}
	testkit.Eventually(t, 10*time.Second, "failed attempts logged with the URL", func() bool {
		return strings.Count(f.log.String(), "NATS connection attempt failed") >= 2 &&
			strings.Contains(f.log.String(), fmt.Sprintf(`"url":"nats://redacted@127.0.0.1:%d"`, port))
	})
	if strings.Contains(f.log.String(), "secret") {
		t.Error("the log shows the NATS password")
	}

	brokertest.StartServer(t, t.TempDir(), port)
	select {
	case <-svc.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("not ready within 30s of NATS coming up")
	}
	testkit.Eventually(t, 5*time.Second, "/readyz 200", func() bool {
		code, _ := get(t, admin+"/readyz")
		return code == http.StatusOK
	})
	if code, body := f.post(t, http.DefaultClient, "http://"+svc.IngressAddr()+"/webhooks/upvest"); code != http.StatusOK {
		t.Errorf("ingress once NATS is up = %d %s, want 200", code, body)
	}
	checkLogKeys(t, f.log.String())
}

// checkLogKeys fails the test for a log line that is not a JSON object or
// that repeats a key (zerolog writes both copies of a key given twice).
func checkLogKeys(t *testing.T, log string) {
	t.Helper()
	for line := range strings.Lines(log) {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Errorf("log line is not a JSON object: %s", line)
			continue
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Errorf("log line %s: %v", line, err)
				break
			}
			key := tok.(string)
			if seen[key] {
				t.Errorf("log line repeats %q: %s", key, line)
			}
			seen[key] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Errorf("log line %s: %v", line, err)
				break
			}
		}
	}
}

// TestIngressOverTLSReloadsTheCertificate: with a certificate and key the
// ingress speaks TLS 1.2 or later only, and serves a new pair once the
// files are replaced.
func TestIngressOverTLSReloadsTheCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	ca := testkit.NewCA(t)
	// A new pair, written over the files as a rotation does; the name tells
	// which is served.
	rotate := func(cn string) string {
		certPEM, keyPEM := ca.Issue(t, cn, x509.ExtKeyUsageServerAuth)
		testkit.WriteFile(t, f.cfg.TLSCertFile, certPEM)
		testkit.WriteFile(t, f.cfg.TLSKeyFile, keyPEM)
		return cn
	}
	f.cfg.TLSCertFile, f.cfg.TLSKeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := rotate("first")
	svc := f.start(t)
	<-svc.Ready()
	addr := svc.IngressAddr()

	serial := func() string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := serial(); got != first {
		t.Fatalf("served certificate %q, want %q", got, first)
	}
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if code, body := f.post(t, client, "https://"+addr+"/webhooks/upvest"); code != http.StatusOK {
		t.Errorf("signed package over TLS = %d %s, want 200", code, body)
	}

	second := rotate("second")
	testkit.Eventually(t, 15*time.Second, "the new certificate is served", func() bool { return serial() == second })
	checkLogKeys(t, f.log.String())
}

func TestNewRefusesConfigThatCannotWork(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for name, edit := range map[string]func(*service.Config){
		"no keys":          func(c *service.Config) { c.Keys = nil },
		"cert without key": func(c *service.Config) { c.TLSCertFile = "x.crt" },
		"no data dir":      func(c *service.Config) { c.DataDir = "" },
		"no listen addr":   func(c *service.Config) { c.ListenAddr = "" },
	} {
		cfg := f.cfg
		edit(&cfg)
		if _, err := service.New(cfg, zerolog.Nop()); !errors.Is(err, service.ErrInvalid) {
			t.Errorf("%s: New = %v, want an error wrapping ErrInvalid", name, err)
		}
	}
}
