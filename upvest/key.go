package upvest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadSigningKey reads the tenant's private key for signing API calls from
// a PEM file: SEC1 "EC PRIVATE KEY" (what Upvest's own tool reads; a
// leading "EC PARAMETERS" block, as openssl writes without -noout, is
// skipped) or PKCS#8 "PRIVATE KEY" holding an ECDSA P-256, P-384 or P-521
// key or an Ed25519 key. Encrypted keys are not supported.
//
// Errors wrap ErrSigningKey (or the file system error) and name the file,
// never its content.
func LoadSigningKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("upvest: read signing key: %w", err)
	}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: %s: no EC PRIVATE KEY or PRIVATE KEY PEM block", ErrSigningKey, path)
		}
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "EC PRIVATE KEY":
			if _, encrypted := block.Headers["Proc-Type"]; encrypted {
				return nil, fmt.Errorf("%w: %s: encrypted keys are not supported", ErrSigningKey, path)
			}
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: not a SEC1 EC private key: %v", ErrSigningKey, path, err)
			}
			return checkCurve(path, k)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: not a PKCS#8 private key: %v", ErrSigningKey, path, err)
			}
			switch k := k.(type) {
			case *ecdsa.PrivateKey:
				return checkCurve(path, k)
			case ed25519.PrivateKey:
				return k, nil
			default:
				return nil, fmt.Errorf("%w: %s: unsupported key type %T (want ECDSA or Ed25519)", ErrSigningKey, path, k)
			}
		default:
			return nil, fmt.Errorf("%w: %s: unsupported PEM block %q (want EC PRIVATE KEY or PRIVATE KEY)", ErrSigningKey, path, block.Type)
		}
	}
}

func checkCurve(path string, k *ecdsa.PrivateKey) (crypto.Signer, error) {
	switch k.Curve {
	case elliptic.P256(), elliptic.P384(), elliptic.P521():
		return k, nil
	}
	return nil, fmt.Errorf("%w: %s: unsupported curve %s (want P-256, P-384 or P-521)", ErrSigningKey, path, k.Curve.Params().Name)
}
