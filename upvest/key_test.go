package upvest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upvest-relay/upvest-relay/upvest"
)

func newECKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEd25519Key(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sec1PEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func pkcs8PEM(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSigningKey(t *testing.T) {
	p256, p384, p521 := newECKey(t, elliptic.P256()), newECKey(t, elliptic.P384()), newECKey(t, elliptic.P521())
	ed := newEd25519Key(t)
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23}})
	tests := []struct {
		name string
		pem  []byte
		want crypto.PublicKey
	}{
		{"SEC1 P-256", sec1PEM(t, p256), p256.Public()},
		{"SEC1 P-384", sec1PEM(t, p384), p384.Public()},
		{"SEC1 P-521", sec1PEM(t, p521), p521.Public()},
		{"SEC1 P-521 after EC PARAMETERS", append(ecParams, sec1PEM(t, p521)...), p521.Public()},
		{"PKCS#8 P-256", pkcs8PEM(t, p256), p256.Public()},
		{"PKCS#8 P-521", pkcs8PEM(t, p521), p521.Public()},
		{"PKCS#8 Ed25519", pkcs8PEM(t, ed), ed.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := upvest.LoadSigningKey(writeFile(t, tt.pem))
			if err != nil {
				t.Fatalf("LoadSigningKey: %v", err)
			}
			if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
				t.Errorf("public key %v, want %v", got.Public(), tt.want)
			}
		})
	}
}

func TestLoadSigningKeyErrors(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p224 := newECKey(t, elliptic.P224())
	good := sec1PEM(t, newECKey(t, elliptic.P256()))
	block, _ := pem.Decode(good)
	truncated := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: block.Bytes[:len(block.Bytes)/2]})
	pub, err := x509.MarshalPKIXPublicKey(newECKey(t, elliptic.P256()).Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pem  []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello")},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})},
		{"RSA PKCS#8", pkcs8PEM(t, rsaKey)},
		{"RSA PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"P-224", sec1PEM(t, p224)},
		{"truncated SEC1", truncated},
		{"SEC1 in a PKCS#8 block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: block.Bytes})},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: block.Bytes})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.pem)
			_, err := upvest.LoadSigningKey(path)
			if !errors.Is(err, upvest.ErrSigningKey) {
				t.Fatalf("err = %v, want ErrSigningKey", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("err %q does not name the file", err)
			}
			if b, _ := pem.Decode(tt.pem); b != nil && len(b.Bytes) > 8 {
				if enc := base64.StdEncoding.EncodeToString(b.Bytes); strings.Contains(err.Error(), enc[:16]) {
					t.Errorf("err %q quotes the key", err)
				}
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := upvest.LoadSigningKey(filepath.Join(t.TempDir(), "nope.pem"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
}
