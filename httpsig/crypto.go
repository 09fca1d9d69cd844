package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"io"
	"math/big"
)

// SignBase signs a signature base with key. ECDSA keys hash with SHA-512
// whatever the curve (as Upvest does) and produce ASN.1 DER; Ed25519 signs
// the base itself.
func SignBase(rand io.Reader, key crypto.Signer, base []byte) ([]byte, error) {
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		sum := sha512.Sum512(base)
		return key.Sign(rand, sum[:], crypto.SHA512)
	case ed25519.PublicKey:
		return key.Sign(rand, base, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupported, key.Public())
	}
}

// VerifyBase checks sig over base with pub. ECDSA signatures are accepted as
// ASN.1 DER and, as a fallback, as raw fixed-width r‖s. It returns
// ErrVerification when the signature does not verify.
func VerifyBase(pub crypto.PublicKey, base, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		// A key without coordinates would make ecdsa panic; Bytes panics
		// too, so the deprecated fields are the only way to tell.
		//lint:ignore SA1019 checking for nil only, never reading the values
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			return fmt.Errorf("%w: incomplete ECDSA key", ErrUnsupported)
		}
		sum := sha512.Sum512(base)
		if ecdsa.VerifyASN1(k, sum[:], sig) {
			return nil
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*size {
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			if ecdsa.Verify(k, sum[:], r, s) {
				return nil
			}
		}
		return ErrVerification
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupported, len(k))
		}
		if ed25519.Verify(k, base, sig) {
			return nil
		}
		return ErrVerification
	default:
		return fmt.Errorf("%w: key type %T", ErrUnsupported, pub)
	}
}
