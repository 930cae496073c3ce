// Package bech32 implements the Bech32 checksummed text encoding of BIP 173,
// without the 90-character length limit, as used for tokrun's key text.
//
// Encode always produces lowercase text. Decode accepts all-lowercase or
// all-uppercase input (never mixed case) and reports the human-readable
// part in lowercase. Callers that need a canonical form (one case only)
// compare the input with a re-encoding.
package bech32

import (
	"errors"
	"fmt"
	"strings"
)

const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// ErrInvalid is returned for text that is not valid Bech32.
var ErrInvalid = errors.New("invalid bech32 text")

var generator = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range generator {
			if (top>>uint(i))&1 == 1 {
				chk ^= g
			}
		}
	}
	return chk
}

func hrpExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

func checksum(hrp string, data []byte) []byte {
	values := append(hrpExpand(hrp), data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	mod := polymod(values) ^ 1
	out := make([]byte, 6)
	for i := range out {
		out[i] = byte(mod>>uint(5*(5-i))) & 31
	}
	return out
}

// convertBits regroups a byte stream of fromBits-wide values into
// toBits-wide values. With pad, a trailing partial group is zero-padded;
// without it, a partial group must be shorter than fromBits and all zero.
func convertBits(data []byte, fromBits, toBits uint, pad bool) ([]byte, error) {
	var acc uint32
	var bits uint
	maxv := uint32(1)<<toBits - 1
	out := make([]byte, 0, len(data)*int(fromBits)/int(toBits)+1)
	for _, b := range data {
		if uint32(b)>>fromBits != 0 {
			return nil, fmt.Errorf("%w: value out of range", ErrInvalid)
		}
		acc = acc<<fromBits | uint32(b)
		bits += fromBits
		for bits >= toBits {
			bits -= toBits
			out = append(out, byte(acc>>bits&maxv))
		}
	}
	if pad {
		if bits > 0 {
			out = append(out, byte(acc<<(toBits-bits)&maxv))
		}
	} else if bits >= fromBits || acc<<(toBits-bits)&maxv != 0 {
		return nil, fmt.Errorf("%w: non-zero or excess padding", ErrInvalid)
	}
	return out, nil
}

// Encode returns the lowercase Bech32 encoding of data with the
// human-readable part hrp.
func Encode(hrp string, data []byte) (string, error) {
	if hrp == "" {
		return "", fmt.Errorf("%w: empty human-readable part", ErrInvalid)
	}
	for i := 0; i < len(hrp); i++ {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", fmt.Errorf("%w: human-readable part has an invalid character", ErrInvalid)
		}
	}
	if strings.ToLower(hrp) != hrp {
		return "", fmt.Errorf("%w: human-readable part must be lowercase", ErrInvalid)
	}
	values, err := convertBits(data, 8, 5, true)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(hrp) + 1 + len(values) + 6)
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range append(values, checksum(hrp, values)...) {
		b.WriteByte(charset[v])
	}
	return b.String(), nil
}

// Decode parses Bech32 text and returns its lowercase human-readable part
// and data. Errors never quote the input.
func Decode(s string) (hrp string, data []byte, err error) {
	lower := strings.ToLower(s)
	if lower != s && strings.ToUpper(s) != s {
		return "", nil, fmt.Errorf("%w: mixed case", ErrInvalid)
	}
	pos := strings.LastIndexByte(lower, '1')
	if pos < 1 || pos+7 > len(lower) {
		return "", nil, fmt.Errorf("%w: missing separator or checksum", ErrInvalid)
	}
	hrp = lower[:pos]
	for i := 0; i < len(hrp); i++ {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", nil, fmt.Errorf("%w: human-readable part has an invalid character", ErrInvalid)
		}
	}
	values := make([]byte, 0, len(lower)-pos-1)
	for i := pos + 1; i < len(lower); i++ {
		v := strings.IndexByte(charset, lower[i])
		if v < 0 {
			return "", nil, fmt.Errorf("%w: character outside the bech32 alphabet", ErrInvalid)
		}
		values = append(values, byte(v))
	}
	if polymod(append(hrpExpand(hrp), values...)) != 1 {
		return "", nil, fmt.Errorf("%w: checksum mismatch", ErrInvalid)
	}
	data, err = convertBits(values[:len(values)-6], 5, 8, false)
	if err != nil {
		return "", nil, err
	}
	return hrp, data, nil
}
