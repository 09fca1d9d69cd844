package verify_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/upvest-relay/upvest-relay/verify"
)

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "verify_keys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwkJSON serialises one key (public or private) as a JWK object.
func jwkJSON(t *testing.T, raw any, kid string, extra map[string]string) json.RawMessage {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range extra {
		if err := k.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setOf(t *testing.T, keys ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string][]json.RawMessage{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadKeysFile(t *testing.T) {
	p521, p256, p384 := ecKey(t, elliptic.P521()), ecKey(t, elliptic.P256()), ecKey(t, elliptic.P384())
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]crypto.PublicKey{"p521": &p521.PublicKey, "p256": &p256.PublicKey, "p384": &p384.PublicKey, "ed": edPub}
	path := writeFile(t, setOf(t,
		jwkJSON(t, &p521.PublicKey, "p521", nil),
		jwkJSON(t, &p256.PublicKey, "p256", map[string]string{"use": "sig"}),
		jwkJSON(t, &p384.PublicKey, "p384", nil),
		jwkJSON(t, edPub, "ed", nil),
	))

	keys, err := verify.LoadKeysFile(path)
	if err != nil {
		t.Fatalf("LoadKeysFile: got %v, want nil", err)
	}
	if !keys.Ready() {
		t.Error("Ready: got false, want true")
	}
	for kid, pub := range want {
		got, err := keys.Key(context.Background(), kid)
		if err != nil {
			t.Errorf("Key(%q): got %v, want nil", kid, err)
			continue
		}
		if !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Errorf("Key(%q): got another key", kid)
		}
	}
	if _, err := keys.Key(context.Background(), "nope"); !errors.Is(err, verify.ErrUnknownKey) {
		t.Errorf("Key(nope): got %v, want %v", err, verify.ErrUnknownKey)
	}
}

func TestLoadKeysFileRefuses(t *testing.T) {
	ec := ecKey(t, elliptic.P521())
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	_ = secret.Set(jwk.KeyIDKey, "hmac")
	secretJSON, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	good := jwkJSON(t, &ec.PublicKey, "good", nil)

	tests := []struct {
		name string
		data []byte
		want string // in the error, besides the path
	}{
		{name: "empty file", data: nil, want: "empty"},
		{name: "blank file", data: []byte(" \n"), want: "empty"},
		{name: "not JSON", data: []byte("-----BEGIN PUBLIC KEY-----"), want: "not a JWK set"},
		{name: "no keys array", data: []byte(`{"kty":"EC"}`), want: `no "keys"`},
		{name: "no keys", data: []byte(`{"keys":[]}`), want: "no keys"},
		{name: "EC private key", data: setOf(t, good, jwkJSON(t, ec, "priv", nil)), want: "private"},
		{name: "Ed25519 private key", data: setOf(t, jwkJSON(t, edPriv, "edpriv", nil)), want: "private"},
		{name: "symmetric secret", data: setOf(t, good, secretJSON), want: "private or secret"},
		{name: "RSA key", data: setOf(t, good, jwkJSON(t, &rsaKey.PublicKey, "rsa", nil)), want: "unsupported key type"},
		{name: "encryption key", data: setOf(t, good, jwkJSON(t, edPub, "enc", map[string]string{"use": "enc"})), want: `use is "enc"`},
		{name: "key without kid", data: setOf(t, good, jwkJSON(t, edPub, "", nil)), want: "no kid"},
		{name: "duplicate kid", data: setOf(t, good, jwkJSON(t, edPub, "good", nil)), want: "duplicate kid"},
		{
			name: "EC point not on the curve",
			data: setOf(t, json.RawMessage(`{"kty":"EC","crv":"P-256","kid":"bad","x":"AQ","y":"AQ"}`)),
			want: "invalid EC public key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.data)
			_, err := verify.LoadKeysFile(path)
			if err == nil {
				t.Fatal("LoadKeysFile: got nil, want an error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadKeysFile: got %q, want it to name %s and say %q", err, path, tt.want)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent.json")
		if _, err := verify.LoadKeysFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadKeysFile: got %v, want an error naming %s", err, path)
		}
	})
}

// The private key itself must never end up in an error message.
func TestLoadKeysFileDoesNotEchoSecrets(t *testing.T) {
	ec := ecKey(t, elliptic.P256())
	priv := jwkJSON(t, ec, "priv", nil)
	var m map[string]string
	if err := json.Unmarshal(priv, &m); err != nil {
		t.Fatal(err)
	}
	_, err := verify.LoadKeysFile(writeFile(t, setOf(t, priv)))
	if err == nil || strings.Contains(err.Error(), m["d"]) {
		t.Errorf("LoadKeysFile: got %v, want an error without the private scalar", err)
	}
}
