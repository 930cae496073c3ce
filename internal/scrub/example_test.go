package scrub_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/tokrun/tokrun/internal/scrub"
)

func Example() {
	s, err := scrub.New([]scrub.Pair{{Secret: "sk-live-0123456789", Placeholder: "TOKRUN_PH_openai"}})
	if err != nil {
		panic(err)
	}
	body := `{"echo":"sk-live-0123456789","auth":"` + base64.StdEncoding.EncodeToString([]byte("sk-live-0123456789")) + `"}`
	r := s.Reader(strings.NewReader(body))
	out, _ := io.ReadAll(r)
	fmt.Println(string(out), r.Count())

	h, n := s.Replace("Basic " + base64.StdEncoding.EncodeToString([]byte("user:sk-live-0123456789")))
	fmt.Println(h, n)
	fmt.Println(s)
	// Output:
	// {"echo":"TOKRUN_PH_openai","auth":"TOKRUN_PH_openai"} 2
	// Basic dXNlcjpTOKRUN_PH_openaik= 1
	// scrub.Scrubber{pairs=1, REDACTED}
}

func ExampleScrubber_AppendReplace() {
	s, err := scrub.New([]scrub.Pair{{Secret: "sk-live-0123456789", Placeholder: "TOKRUN_PH_openai"}})
	if err != nil {
		panic(err)
	}
	body := []byte(`{"key":"sk-live-0123456789"}`)
	out, n := s.AppendReplace(make([]byte, 0, 64), body)
	fmt.Println(string(out), n, s.Contains(body), s.Contains(out))
	// Output:
	// {"key":"TOKRUN_PH_openai"} 1 true false
}
