package match

import "testing"

// A wildcard whose suffix is not itself a public suffix can still lie
// above public suffixes (cloud providers' ones): it covers no host
// registered under those, which anyone can own.
func TestWildcardStopsAtNestedPublicSuffix(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		match         bool
	}{
		{"*.amazonaws.com", "attacker.execute-api.us-east-1.amazonaws.com", false},
		{"*.amazonaws.com", "attacker-bucket.s3.amazonaws.com", false},
		{"*.on.aws", "attacker.lambda-url.us-east-1.on.aws", false},
		{"*.core.windows.net", "attacker.blob.core.windows.net", false},
		{"*.amazonaws.com", "sts.amazonaws.com", true},
		{"*.amazonaws.com", "bedrock-runtime.us-west-2.amazonaws.com", true},
		{"*.openai.azure.com", "my.openai.azure.com", true},
		{"*.pythonhosted.org", "files.pythonhosted.org", true},
		{"*.example.com", "a.b.example.com", true},
	} {
		p, err := ParseHostPattern(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if got := p.Match(tc.host); got != tc.match {
			t.Errorf("%s matches %s: %v, want %v", tc.pattern, tc.host, got, tc.match)
		}
	}
}
