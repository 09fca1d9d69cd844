package httpsig

import (
	"crypto"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"
)

// Label is the signature label Upvest uses.
const Label = "sig1"

// Signer signs outgoing requests. The zero value is not usable: Key and
// KeyID are required. A Signer is safe for concurrent use.
type Signer struct {
	Key   crypto.Signer
	KeyID string
	// Style of the base lines: Quoted for draft-15/RFC 9421, Unquoted to
	// reproduce Upvest's draft-06 webhooks.
	Style Style
	// Lifetime sets expires = created + Lifetime, in whole seconds; below
	// one second (the zero value included) it is 60 s.
	Lifetime time.Duration
	// Now and Rand default to time.Now and crypto/rand.Reader.
	Now  func() time.Time
	Rand io.Reader
}

// Sign covers components of r (which must already carry every covered
// header, including the digest) and sets Signature-Input and Signature.
// Parameters are keyid, created, nonce (10 digits) and expires, in that
// order, as Upvest's signer writes them.
func (s *Signer) Sign(r *http.Request, components []string) error {
	if s.Key == nil || s.KeyID == "" {
		return fmt.Errorf("%w: signer needs a key and a key id", ErrUnsupported)
	}
	if !printable(s.KeyID) {
		return fmt.Errorf("%w: key id must be printable ASCII", ErrUnsupported)
	}
	for _, c := range components {
		if !printable(c) {
			return fmt.Errorf("%w: component name %q", ErrUnsupported, c)
		}
	}
	now, rnd, life := time.Now, s.Rand, s.Lifetime
	if s.Now != nil {
		now = s.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	if life < time.Second {
		life = 60 * time.Second
	}
	nonce, err := Nonce(rnd)
	if err != nil {
		return err
	}
	created := now().Unix()
	member := FormatMember(components, Params{
		KeyID:   s.KeyID,
		Created: created,
		Nonce:   nonce,
		Expires: created + int64(life/time.Second),
	})
	base, err := Base(r, components, member, s.Style)
	if err != nil {
		return err
	}
	sig, err := SignBase(rnd, s.Key, base)
	if err != nil {
		return err
	}
	r.Header.Set("Signature-Input", Label+"="+member)
	r.Header.Set("Signature", FormatSignature(Label, sig))
	return nil
}

// Nonce returns a random 10-digit decimal nonce, as Upvest's signer uses.
func Nonce(rnd io.Reader) (string, error) {
	n, err := rand.Int(rnd, big.NewInt(9_000_000_000))
	if err != nil {
		return "", fmt.Errorf("httpsig: nonce: %w", err)
	}
	return fmt.Sprintf("%010d", n.Int64()+1_000_000_000), nil
}
