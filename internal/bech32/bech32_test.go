package bech32

import (
	"bytes"
	"strings"
	"testing"
)

// Valid and invalid strings from BIP 173.
func TestBIP173Vectors(t *testing.T) {
	valid := []string{
		"A12UEL5L",
		"a12uel5l",
		"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
		"?1ezyfcl",
	}
	for _, s := range valid {
		hrp, data, err := Decode(s)
		if err != nil {
			t.Errorf("Decode(%q): %v", s, err)
			continue
		}
		// Vectors whose 5-bit data is not a whole number of bytes cannot
		// round-trip through the 8-bit API; the others must.
		if again, err := Encode(hrp, data); err == nil && again != strings.ToLower(s) && len(again) == len(s) {
			t.Errorf("Encode(Decode(%q)) = %q", s, again)
		}
	}
	invalid := []string{
		"\x201nwldj5",   // hrp character out of range
		"\x7f1axkwrx",   // hrp character out of range
		"pzry9x0s0muk",  // no separator
		"1pzry9x0s0muk", // empty hrp
		"x1b4n0q5v",     // invalid data character
		"li1dgmt3",      // checksum too short
		"de1lg7wt\xff",  // invalid character in checksum
		"A1G7SGD8",      // checksum computed with uppercase hrp
		"10a06t8",       // empty hrp
		"1qzzfhee",      // empty hrp
		"abcdef1Qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", // mixed case
	}
	for _, s := range invalid {
		if _, _, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) succeeded, want error", s)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for n := 0; n < 70; n++ {
		data := bytes.Repeat([]byte{byte(n * 37)}, n)
		s, err := Encode("tokrun-test-", data)
		if err != nil {
			t.Fatal(err)
		}
		hrp, got, err := Decode(strings.ToUpper(s))
		if err != nil || hrp != "tokrun-test-" || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: hrp=%q err=%v", n, hrp, err)
		}
	}
}

func TestEveryCharacterChangeIsDetected(t *testing.T) {
	s, err := Encode("tokrunpub", bytes.Repeat([]byte{0xa5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for i := len("tokrunpub1"); i < len(s); i++ {
		for _, c := range charset {
			if byte(c) == s[i] {
				continue
			}
			mut := s[:i] + string(c) + s[i+1:]
			if _, _, err := Decode(mut); err == nil {
				t.Fatalf("changing position %d to %q went undetected", i, c)
			}
		}
	}
}

func TestEncodeRejectsBadHRP(t *testing.T) {
	for _, hrp := range []string{"", "UPPER", "sp ace"} {
		if _, err := Encode(hrp, []byte{1}); err == nil {
			t.Errorf("Encode(%q) succeeded", hrp)
		}
	}
}
