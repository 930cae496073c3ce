package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseExpires(t *testing.T) {
	now := time.Date(2026, 3, 15, 10, 30, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "720h", want: now.Add(720 * time.Hour)},
		{in: "1h30m", want: now.Add(90 * time.Minute)},
		{in: "1s", want: now.Add(time.Second)},
		{in: "90d", want: now.Add(90 * 24 * time.Hour)},
		{in: "1d", want: now.Add(24 * time.Hour)},
		{in: "36600d", want: now.Add(36600 * 24 * time.Hour)},
		{in: "2027-01-31", want: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{in: "2026-03-16", want: time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)},
		{in: "2027-01-31T18:00:00Z", want: time.Date(2027, 1, 31, 18, 0, 0, 0, time.UTC)},
		{in: "2027-01-31T18:00:00+02:00", want: time.Date(2027, 1, 31, 16, 0, 0, 0, time.UTC)},
		{in: "2027-01-31T18:00:00.5Z", want: time.Date(2027, 1, 31, 18, 0, 0, 5e8, time.UTC)},

		// In the past or now.
		{in: "2026-03-15", wantErr: "2026-03-15T00:00:00Z is not in the future (now is 2026-03-15T09:30:00Z)"},
		{in: "2020-01-01T00:00:00Z", wantErr: "is not in the future"},
		{in: "2026-03-15T09:30:00Z", wantErr: "is not in the future"},
		{in: "0s", wantErr: "a duration must be positive"},
		{in: "500ms", wantErr: "is not in the future"}, // tokens keep whole seconds
		{in: "2026-03-15T09:30:00.9Z", wantErr: "is not in the future"},
		{in: "-1h", wantErr: "a duration must be positive"},
		{in: "0d", wantErr: "days must be between 1 and 36600"},
		{in: "36601d", wantErr: "days must be between 1 and 36600"},
		{in: "99999999999999999999d", wantErr: "want a duration"},

		// Not a time at all.
		{in: "", wantErr: "want a duration"},
		{in: "d", wantErr: "want a duration"},
		{in: "-1d", wantErr: "want a duration"},
		{in: "+1d", wantErr: "want a duration"},
		{in: "1.5d", wantErr: "want a duration"},
		{in: "1d12h", wantErr: "want a duration"},
		{in: "90", wantErr: "want a duration"},
		{in: "tomorrow", wantErr: "want a duration"},
		{in: "2027-1-31", wantErr: "want a duration"},
		{in: "2027-02-30", wantErr: "want a duration"},
		{in: "31/01/2027", wantErr: "want a duration"},
		{in: "2027-01-31T18:00:00", wantErr: "want a duration"},
		{in: "2027-01-31 18:00:00Z", wantErr: "want a duration"},
	}
	for _, tt := range tests {
		got, err := parseExpires(tt.in, now)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseExpires(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), `--expires "`+tt.in+`": `) {
				t.Errorf("parseExpires(%q) error %q does not name the flag and value", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseExpires(%q): %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("parseExpires(%q) = %v, want %v in UTC", tt.in, got, tt.want.UTC())
		}
	}
}
