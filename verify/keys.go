package verify

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
)

// KeySource finds the public key that verifies signatures made under a key
// id. Key returns an error wrapping ErrUnknownKey when no key has that id,
// or ErrKeysUnavailable when no key set could be loaded at all. It must be
// safe for concurrent use.
type KeySource interface {
	Key(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// StaticKeys is a fixed key set, typically read from a JWKS file
// (RELAY_VERIFY_KEYS_FILE). It never changes, so a key rotated upstream is
// unknown until the file is replaced and the process restarted.
type StaticKeys struct {
	keys keySet
}

// LoadKeysFile reads a JWK Set file for StaticKeys. The file must hold at
// least one key and only keys usable for verification (EC P-256, P-384,
// P-521 or OKP Ed25519, each with a kid); an unreadable, empty or invalid
// file, or one with private key material, is an error naming the file.
func LoadKeysFile(path string) (*StaticKeys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verify: keys file: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("verify: keys file %s is empty", path)
	}
	s, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("verify: keys file %s: %w", path, err)
	}
	return s, nil
}

// ParseKeys builds StaticKeys from a JWK Set document, with the same rules
// as LoadKeysFile.
func ParseKeys(data []byte) (*StaticKeys, error) {
	keys, skipped, err := parseJWKS(data)
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		return nil, fmt.Errorf("unusable keys: %w", errors.Join(skipped...))
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return &StaticKeys{keys: keys}, nil
}

// Key returns the key with id kid, or an error wrapping ErrUnknownKey.
func (s *StaticKeys) Key(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: keyid %q", ErrUnknownKey, short(kid))
}

// Ready reports whether keys are loaded; for StaticKeys always true.
func (s *StaticKeys) Ready() bool { return true }
