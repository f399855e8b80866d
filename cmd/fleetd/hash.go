package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// hashFile returns the hex SHA-256 of the first size bytes of r.
func hashFile(r io.Reader, size int64) (string, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	if n != size {
		return "", fmt.Errorf("hash: read %d bytes, the file has %d", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
