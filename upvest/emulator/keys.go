package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// signingKey is one of the emulator's webhook-signing keys.
type signingKey struct {
	kid string
	key *ecdsa.PrivateKey
	// retired is when the key stopped signing; zero while it signs.
	retired time.Time
}

func newSigningKey() (*signingKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("emulator: generating signing key: %w", err)
	}
	return &signingKey{kid: uuid.NewString(), key: k}, nil
}

// RotateKey makes a new P-521 webhook-signing key, signs every delivery
// attempt from now on with it, and keeps the previous key published for
// the retention set by WithKeyRetention so that signatures made just before
// the rotation still verify. It returns the new key id.
func (s *Server) RotateKey() (string, error) {
	k, err := newSigningKey()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[len(s.keys)-1].retired = s.now()
	s.keys = append(s.keys, k)
	return k.kid, nil
}

// SigningKeyID is the kid of the key that signs deliveries now.
func (s *Server) SigningKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1].kid
}

// SigningKeys returns the published webhook-verification keys by kid.
func (s *Server) SigningKeys() map[string]*ecdsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*ecdsa.PublicKey{}
	for _, k := range s.publishedKeys() {
		out[k.kid] = &k.key.PublicKey
	}
	return out
}

// VerifyKeysURL is the URL of the JWKS (GET /auth/verify_keys). Fetching it
// needs a signed request and a token with scope webhooks:read.
func (s *Server) VerifyKeysURL() string { return s.url + "/auth/verify_keys" }

// JWKS returns the document GET /auth/verify_keys answers now:
// {"keys":[{"kid","kty":"EC","crv":"P-521","x","y"}]}, e.g. to write a
// static RELAY_VERIFY_KEYS_FILE.
func (s *Server) JWKS() ([]byte, error) {
	s.mu.Lock()
	keys := s.publishedKeys()
	s.mu.Unlock()
	set := jwk.NewSet()
	for _, k := range keys {
		j, err := jwk.FromRaw(&k.key.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("emulator: jwk: %w", err)
		}
		if err := j.Set(jwk.KeyIDKey, k.kid); err != nil {
			return nil, fmt.Errorf("emulator: jwk: %w", err)
		}
		if err := set.AddKey(j); err != nil {
			return nil, fmt.Errorf("emulator: jwk: %w", err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("emulator: jwks: %w", err)
	}
	return b, nil
}

// publishedKeys drops keys retired longer ago than the retention and
// returns the rest, newest last. s.mu must be held.
func (s *Server) publishedKeys() []*signingKey {
	now := s.now()
	kept := s.keys[:0]
	for i, k := range s.keys {
		last := i == len(s.keys)-1
		if last || k.retired.IsZero() || now.Sub(k.retired) < s.cfg.keyRetention {
			kept = append(kept, k)
		}
	}
	s.keys = kept
	return append([]*signingKey(nil), kept...)
}

// currentKey is the key that signs deliveries now.
func (s *Server) currentKey() *signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1]
}

// handleVerifyKeys is GET /auth/verify_keys.
func (s *Server) handleVerifyKeys(*call) result {
	b, err := s.JWKS()
	if err != nil {
		return problemResult(http.StatusInternalServerError, "%v", err)
	}
	return result{status: http.StatusOK, body: b}
}
