package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"testing"
)

// TestVerifyBaseMalformedKeys: a key a KeySource got wrong is an error,
// never a panic (ed25519.Verify panics on a key of the wrong size, and a
// nil ECDSA key or one without curve or coordinates dereferences nil).
func TestVerifyBaseMalformedKeys(t *testing.T) {
	base, sig := []byte(`"@signature-params": ()`), make([]byte, 64)
	tests := []struct {
		name string
		pub  crypto.PublicKey
	}{
		{name: "short Ed25519 key", pub: ed25519.PublicKey{1, 2, 3}},
		{name: "empty Ed25519 key", pub: ed25519.PublicKey(nil)},
		{name: "nil ECDSA key", pub: (*ecdsa.PublicKey)(nil)},
		{name: "ECDSA key without curve", pub: &ecdsa.PublicKey{}},
		{name: "ECDSA key without coordinates", pub: &ecdsa.PublicKey{Curve: elliptic.P256()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyBase(tt.pub, base, sig); !errors.Is(err, ErrUnsupported) {
				t.Errorf("VerifyBase: got %v, want %v", err, ErrUnsupported)
			}
		})
	}
}
