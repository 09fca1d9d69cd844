package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"
)

// TestVerifiedCacheBound: the cache keeps at most verifiedCap keys,
// forgetting the oldest first, and a key added again keeps its place.
func TestVerifiedCacheBound(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	until := now.Add(time.Minute)
	key := func(i int) [sha256.Size]byte {
		var k [sha256.Size]byte
		binary.BigEndian.PutUint64(k[:], uint64(i))
		return k
	}
	var c verifiedCache
	const extra = 10
	for i := range verifiedCap + extra {
		c.add(key(i), until)
		if i == verifiedCap-1 {
			c.add(key(0), until) // again: not a new entry
		}
	}
	if n := len(c.entries); n != verifiedCap {
		t.Fatalf("%d entries, want %d", n, verifiedCap)
	}
	for i := range verifiedCap + extra {
		if got, want := c.has(key(i), now), i >= extra; got != want {
			t.Errorf("key %d remembered: %v, want %v", i, got, want)
		}
	}
	if c.has(key(verifiedCap), until) {
		t.Error("an entry is still valid when it lapses")
	}
}

// BenchmarkVerifiedCacheAddFull is remembering a new verification when
// the cache is full, as under a steady stream of packages.
func BenchmarkVerifiedCacheAddFull(b *testing.B) {
	until := time.Unix(1_700_000_000, 0).Add(time.Minute)
	var c verifiedCache
	var k [sha256.Size]byte
	for i := range verifiedCap {
		binary.BigEndian.PutUint64(k[:], uint64(i))
		c.add(k, until)
	}
	i := verifiedCap
	for b.Loop() {
		binary.BigEndian.PutUint64(k[:], uint64(i))
		c.add(k, until)
		i++
	}
}
