package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// verifiedCap bounds the signatures remembered as verified.
const verifiedCap = 4096

// verifiedCache remembers signatures that verified, so that the same
// signed head again (a replay, by Upvest's retry or by an attacker holding
// a copy) costs a hash instead of a public-key operation. It is keyed on
// the key (id and material), the signature and the signature bases, so anything that
// differs is verified afresh; entries lapse when their signature could no
// longer pass the freshness check anyway. Failures are never remembered.
// At most verifiedCap entries are kept, the oldest made room for first, at
// a constant cost per verification.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time // → when the entry lapses
	order   [][sha256.Size]byte             // the keys, a ring in the order they came
	next    int                             // where in order the next key goes
}

func cacheKey(h *Head) [sha256.Size]byte {
	d := sha256.New()
	pub := h.v.prints.of(h.kid, h.pub) // the key itself, not only its id
	for _, part := range [][]byte{[]byte(h.kid), pub[:], h.sig, h.bases[0], h.bases[1]} {
		d.Write(part)
		d.Write([]byte{0})
	}
	var k [sha256.Size]byte
	d.Sum(k[:0])
	return k
}

// has reports whether k verified and has not lapsed at now.
func (c *verifiedCache) has(k [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.entries[k]
	return ok && now.Before(until)
}

// add remembers k as verified until until, forgetting the oldest key
// when verifiedCap are remembered.
func (c *verifiedCache) add(k [sha256.Size]byte, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[[sha256.Size]byte]time.Time, verifiedCap)
		c.order = make([][sha256.Size]byte, 0, verifiedCap)
	}
	if _, ok := c.entries[k]; ok {
		c.entries[k] = until
		return
	}
	if len(c.order) < verifiedCap {
		c.order = append(c.order, k)
	} else {
		delete(c.entries, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % verifiedCap
	}
	c.entries[k] = until
}

// keyPrints remembers the fingerprint (SHA-256 of the PKIX encoding) of
// the key last seen under each key id, so that a verification does not
// encode the key again: only keys the key source returned get here, a
// handful. A key id whose key changed (rotation) gets the new key's print.
type keyPrints struct {
	mu    sync.Mutex
	byKid map[string]keyPrint
}

type keyPrint struct {
	pub   crypto.PublicKey
	print [sha256.Size]byte
}

// of returns pub's fingerprint; kid is where the key source found it.
func (p *keyPrints) of(kid string, pub crypto.PublicKey) [sha256.Size]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.byKid[kid]; ok && samePublicKey(e.pub, pub) {
		return e.print
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	e := keyPrint{pub: pub, print: sha256.Sum256(der)}
	if p.byKid == nil {
		p.byKid = make(map[string]keyPrint)
	}
	p.byKid[kid] = e
	return e.print
}
