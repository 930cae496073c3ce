package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxExpiryDays bounds "Nd" so that the arithmetic cannot overflow.
const maxExpiryDays = 100 * 366

// expiresHelp documents parseExpires for the seal help text.
const expiresHelp = `--expires takes one of:
  720h, 1h30m             a Go duration from now
  90d                     a number of days from now (1d = 24h)
  2027-01-31              a date: the secret stops working at the START of
                          that day, 00:00:00 UTC
  2027-01-31T18:00:00Z    an RFC 3339 time (any offset, stored as UTC)
The time must be in the future and is stored to the second.`

var errExpiresSyntax = errors.New("want a duration (720h), days (90d), a date (2027-01-31) or an RFC 3339 time (2027-01-31T18:00:00Z)")

// parseExpires parses an --expires value relative to now, as described
// by expiresHelp. The result is after now.
func parseExpires(s string, now time.Time) (time.Time, error) {
	t, err := parseExpiresTime(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: %w", s, err)
	}
	// Tokens keep whole seconds: an expiry must still be after the
	// sealing time once both are cut to the second.
	if !t.Truncate(time.Second).After(now.Truncate(time.Second)) {
		return time.Time{}, fmt.Errorf("--expires %q: %s is not in the future (now is %s)",
			s, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return t.UTC(), nil
}

func parseExpiresTime(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || days == "" || days[0] < '0' || days[0] > '9' {
			return time.Time{}, errExpiresSyntax
		}
		if n < 1 || n > maxExpiryDays {
			return time.Time{}, fmt.Errorf("days must be between 1 and %d", maxExpiryDays)
		}
		return now.Add(time.Duration(n) * 24 * time.Hour), nil
	}
	if len(s) == len("2006-01-02") {
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			return t, nil
		}
	}
	if strings.Contains(s, "T") {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, errExpiresSyntax
		}
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, errExpiresSyntax
	}
	if d <= 0 {
		return time.Time{}, errors.New("a duration must be positive")
	}
	return now.Add(d), nil
}
