package config_test

import (
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// keyPair writes a fresh certificate and its key as PEM files under dir
// and returns their paths.
func keyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return testkit.NewCA(t).IssueFiles(t, dir, name, x509.ExtKeyUsageServerAuth)
}

func TestLoadNewVariables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := keyPair(t, dir, "ingress")
	natsCert, natsKey := keyPair(t, dir, "nats")
	got, err := config.FromEnviron([]string{
		"RELAY_TLS_CERT_FILE=" + cert,
		"RELAY_TLS_KEY_FILE=" + key,
		"RELAY_ALLOWED_SOURCES=35.198.0.0/16, 203.0.113.7,2001:db8::/32 , 2001:db8:1::1",
		"RELAY_TRUSTED_PROXIES=10.0.0.0/8",
		"RELAY_NATS_TLS_CA_FILE=" + natsCert,
		"RELAY_NATS_TLS_CERT_FILE=" + natsCert,
		"RELAY_NATS_TLS_KEY_FILE=" + natsKey,
		"RELAY_EMBEDDED_SYNC=2m",
	})
	if err != nil {
		t.Fatalf("FromEnviron error = %v, want nil", err)
	}
	wantSources := []netip.Prefix{
		netip.MustParsePrefix("35.198.0.0/16"),
		netip.MustParsePrefix("203.0.113.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("2001:db8:1::1/128"),
	}
	if !slices.Equal(got.AllowedSources, wantSources) {
		t.Errorf("AllowedSources = %v, want %v", got.AllowedSources, wantSources)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}; !slices.Equal(got.TrustedProxies, want) {
		t.Errorf("TrustedProxies = %v, want %v", got.TrustedProxies, want)
	}
	if got.TLSCertFile != cert || got.TLSKeyFile != key {
		t.Errorf("TLS files = %q, %q, want %q, %q", got.TLSCertFile, got.TLSKeyFile, cert, key)
	}
	if got.NATSTLSCAFile != natsCert || got.NATSTLSCertFile != natsCert || got.NATSTLSKeyFile != natsKey {
		t.Errorf("NATS TLS files = %q, %q, %q", got.NATSTLSCAFile, got.NATSTLSCertFile, got.NATSTLSKeyFile)
	}
	if got.EmbeddedSync != 2*time.Minute {
		t.Errorf("EmbeddedSync = %s, want 2m", got.EmbeddedSync)
	}
	if s := got.String(); !containsAll(s, `RELAY_EMBEDDED_SYNC="2m0s"`,
		`RELAY_ALLOWED_SOURCES="35.198.0.0/16,203.0.113.7/32,2001:db8::/32,2001:db8:1::1/128"`) {
		t.Errorf("String() = %s", s)
	}

	def, err := config.FromEnviron(nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.EmbeddedSync != 0 || def.AllowedSources != nil || def.TrustedProxies != nil {
		t.Errorf("defaults: EmbeddedSync = %s, AllowedSources = %v, TrustedProxies = %v; want always (0), none, none",
			def.EmbeddedSync, def.AllowedSources, def.TrustedProxies)
	}
	if s := def.String(); !containsAll(s, `RELAY_EMBEDDED_SYNC="always"`, `RELAY_ALLOWED_SOURCES=""`) {
		t.Errorf("String() = %s", s)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestLoadNewVariablesInvalid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := keyPair(t, dir, "a")
	otherCert, otherKey := keyPair(t, dir, "b")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		wantMsg string // the whole message, or "" for only the variable
		wantVar string
	}{
		{"sync zero", []string{"RELAY_EMBEDDED_SYNC=0s"},
			`config: RELAY_EMBEDDED_SYNC: must be always or a positive duration such as 10s or 2m, got "0s"`, ""},
		{"sync word", []string{"RELAY_EMBEDDED_SYNC=ALWAYS"}, "", "RELAY_EMBEDDED_SYNC"},
		{"sync empty", []string{"RELAY_EMBEDDED_SYNC="}, "", "RELAY_EMBEDDED_SYNC"},
		{"source not an address", []string{"RELAY_ALLOWED_SOURCES=upvest.co"},
			`config: RELAY_ALLOWED_SOURCES: must be a CIDR such as 10.0.0.0/8 or an IP address, got "upvest.co"`, ""},
		{"source host bits", []string{"RELAY_ALLOWED_SOURCES=10.1.2.3/8"},
			`config: RELAY_ALLOWED_SOURCES: "10.1.2.3/8" has host bits set; the network is 10.0.0.0/8`, ""},
		{"source empty entry", []string{"RELAY_ALLOWED_SOURCES=10.0.0.0/8,,"}, "", "RELAY_ALLOWED_SOURCES"},
		{"source twice", []string{"RELAY_ALLOWED_SOURCES=10.0.0.1,10.0.0.1/32"}, "", "RELAY_ALLOWED_SOURCES"},
		{"source with zone", []string{"RELAY_ALLOWED_SOURCES=fe80::1%eth0"}, "", "RELAY_ALLOWED_SOURCES"},
		{"source bad bits", []string{"RELAY_ALLOWED_SOURCES=10.0.0.0/33"}, "", "RELAY_ALLOWED_SOURCES"},
		{"proxy bad", []string{"RELAY_TRUSTED_PROXIES=*"}, "", "RELAY_TRUSTED_PROXIES"},
		{"tls cert only", []string{"RELAY_TLS_CERT_FILE=" + cert},
			"config: RELAY_TLS_KEY_FILE: required when RELAY_TLS_CERT_FILE is set", ""},
		{"tls key only", []string{"RELAY_TLS_KEY_FILE=" + key},
			"config: RELAY_TLS_CERT_FILE: required when RELAY_TLS_KEY_FILE is set", ""},
		{"tls missing file", []string{"RELAY_TLS_CERT_FILE=" + filepath.Join(dir, "none.crt"), "RELAY_TLS_KEY_FILE=" + key}, "", "RELAY_TLS_CERT_FILE"},
		{"tls mismatched pair", []string{"RELAY_TLS_CERT_FILE=" + cert, "RELAY_TLS_KEY_FILE=" + otherKey}, "", "RELAY_TLS_CERT_FILE"},
		{"tls cert not PEM", []string{"RELAY_TLS_CERT_FILE=" + notPEM, "RELAY_TLS_KEY_FILE=" + key}, "", "RELAY_TLS_CERT_FILE"},
		{"nats ca not PEM", []string{"RELAY_NATS_TLS_CA_FILE=" + notPEM},
			`config: RELAY_NATS_TLS_CA_FILE: "` + notPEM + `" holds no PEM certificate`, ""},
		{"nats ca directory", []string{"RELAY_NATS_TLS_CA_FILE=" + dir}, "", "RELAY_NATS_TLS_CA_FILE"},
		{"nats key only", []string{"RELAY_NATS_TLS_KEY_FILE=" + otherKey},
			"config: RELAY_NATS_TLS_CERT_FILE: required when RELAY_NATS_TLS_KEY_FILE is set", ""},
		{"nats mismatched pair", []string{"RELAY_NATS_TLS_CERT_FILE=" + otherCert, "RELAY_NATS_TLS_KEY_FILE=" + key}, "", "RELAY_NATS_TLS_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.FromEnviron(tt.env)
			wantVar := tt.wantVar
			if tt.wantMsg != "" {
				wantVar = splitVar(tt.wantMsg)
			}
			checkError(t, err, config.ErrInvalid, wantVar)
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

// splitVar returns the variable of a "config: NAME: ..." message.
func splitVar(msg string) string {
	return strings.SplitN(msg, ": ", 3)[1]
}

func TestLoadUnknownSuggests(t *testing.T) {
	t.Parallel()
	_, err := config.FromEnviron([]string{"RELAY_LISTN_ADDR=:8081"})
	checkError(t, err, config.ErrUnknown, "RELAY_LISTN_ADDR")
	if want := "config: RELAY_LISTN_ADDR: unknown variable; did you mean RELAY_LISTEN_ADDR?"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	_, err = config.FromEnviron([]string{"RELAY_NOTHING_LIKE_IT=1"})
	if want := "config: RELAY_NOTHING_LIKE_IT: unknown variable"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// TestFromEnvironFirstWins checks that of a name given twice the first
// counts, as for os.Getenv.
func TestFromEnvironFirstWins(t *testing.T) {
	t.Parallel()
	c, err := config.FromEnviron([]string{"RELAY_STREAM=FIRST", "RELAY_STREAM=SECOND"})
	if err != nil || c.Stream != "FIRST" {
		t.Errorf("FromEnviron = %q, %v; want FIRST, nil", c.Stream, err)
	}
}
