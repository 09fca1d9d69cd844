package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// keySet maps a key id to its verification key. A keySet is never modified
// after it is built, so it can be shared between goroutines.
type keySet map[string]crypto.PublicKey

// errPrivateKey is returned when a JWK set carries private or secret key
// material, which a verifier has no business holding.
var errPrivateKey = errors.New("contains private or secret key material")

// privateMembers are the JWK members that carry private (EC, OKP, RSA) or
// secret (oct) key material.
var privateMembers = []string{"d", "k", "p", "q", "dp", "dq", "qi", "oth"}

// parseJWKS reads a JWK Set document (RFC 7517) and returns its usable
// verification keys by kid: EC P-256, P-384 and P-521 and OKP Ed25519
// public keys that have a kid and no "use" other than "sig". Every other
// key is left out, with the reason in skipped.
//
// A document that is not a JWK set, that carries private or secret key
// material in any key, or that names two keys with the same kid is an
// error. An empty but valid set is not an error; callers decide.
func parseJWKS(data []byte) (keys keySet, skipped []error, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWK set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`not a JWK set: no "keys" array`)
	}
	keys = make(keySet, len(doc.Keys))
	for i, raw := range doc.Keys {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: not a JSON object", i))
			continue
		}
		for _, m := range privateMembers {
			if _, ok := members[m]; ok {
				return nil, nil, fmt.Errorf("key %d: %w (member %q)", i, errPrivateKey, m)
			}
		}
		kid, pub, err := verificationKey(raw)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, short(kid), err))
			continue
		}
		if _, dup := keys[kid]; dup {
			return nil, nil, fmt.Errorf("key %d: duplicate kid %q", i, short(kid))
		}
		keys[kid] = pub
	}
	return keys, skipped, nil
}

// verificationKey parses one public JWK and returns its kid and key, or the
// reason it cannot verify Upvest signatures. It validates what jwx does
// not: that an EC point lies on its curve and an Ed25519 key has the right
// size (ed25519.Verify panics otherwise).
func verificationKey(raw []byte) (string, crypto.PublicKey, error) {
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return "", nil, err
	}
	kid := key.KeyID()
	if kid == "" {
		return "", nil, errors.New("no kid")
	}
	if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return kid, nil, fmt.Errorf("use is %q, not \"sig\"", short(use))
	}
	var pub any
	if err := key.Raw(&pub); err != nil {
		return kid, nil, err
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return kid, nil, fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
		}
		if _, err := k.ECDH(); err != nil {
			return kid, nil, fmt.Errorf("invalid EC public key: %w", err)
		}
		return kid, k, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return kid, nil, fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
		return kid, k, nil
	default:
		return kid, nil, fmt.Errorf("unsupported key type %T", pub)
	}
}

// short bounds a string taken from input (a kid, a parameter) before it goes
// into an error message or a log line.
func short(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
