package sealing_test

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/tokrun/tokrun/sealing"
)

// Seal a secret to a proxy's public key, bound to one host and header;
// the proxy opens it with its key ring and checks each use.
func Example() {
	key, err := sealing.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	token, err := sealing.Seal(rand.Reader, key.Public(), sealing.Binding{
		Name:   "openai",
		Hosts:  []string{"api.openai.com"},
		Header: "Authorization",
		Format: "Bearer {}",
	}, "sk-example-0123456789", time.Now())
	if err != nil {
		panic(err)
	}

	ring, err := sealing.NewKeyRing(key)
	if err != nil {
		panic(err)
	}
	secret, err := ring.Open(token, "openai")
	if err != nil {
		panic(err)
	}
	fmt.Println(secret.Binding().Header, secret.Binding().Hosts)
	fmt.Println(secret.Permits("api.openai.com", "POST", "/v1/chat/completions", time.Now()) == nil)
	fmt.Println(secret.Permits("evil.example", "POST", "/", time.Now()))
	fmt.Println(secret) // every printed form is redacted
	// Output:
	// Authorization [api.openai.com]
	// true
	// host not in the secret's sealed binding: secret openai is sealed for api.openai.com, not evil.example
	// sealing.Secret{name=openai, fp:33eef7e771aca9d0, REDACTED}
}
