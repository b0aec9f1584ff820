package ring0

import (
	"testing"
	"time"
)

// TestUnixDays checks the civil-date conversion the RTC read uses against the time package,
// for every day of the years an RTC with a century register can report, and a few more.
func TestUnixDays(t *testing.T) {
	d := time.Date(1900, time.January, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2400, time.March, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for ; !d.After(end); d = d.AddDate(0, 0, 1) {
		want := d.Unix() / 86400
		if got := unixDays(int64(d.Year()), int64(d.Month()), int64(d.Day())); got != want {
			t.Errorf("unixDays(%d, %d, %d) = %d, want %d", d.Year(), d.Month(), d.Day(), got, want)
			if n++; n > 10 {
				t.Fatal("too many errors")
			}
		}
	}
	// Landmarks, in case time.Date and unixDays share a mistake.
	landmarks := []struct {
		y, m, d int64
		want    int64
	}{
		{1970, 1, 1, 0},
		{1969, 12, 31, -1},
		{2000, 2, 29, 11016}, // divisible by 400: a leap year
		{2000, 3, 1, 11017},
		{2038, 1, 19, 24855}, // the 32-bit time_t limit day
		{2100, 3, 1, 47541},  // 2100 is not a leap year: Feb 28 is the day before
		{2100, 2, 28, 47540},
	}
	for _, l := range landmarks {
		if got := unixDays(l.y, l.m, l.d); got != l.want {
			t.Errorf("unixDays(%d, %d, %d) = %d, want %d", l.y, l.m, l.d, got, l.want)
		}
	}
}

func TestBCD(t *testing.T) {
	for _, tt := range []struct {
		in   byte
		want int64
	}{{0x00, 0}, {0x09, 9}, {0x10, 10}, {0x59, 59}, {0x99, 99}, {0x23, 23}} {
		if got := bcd(tt.in); got != tt.want {
			t.Errorf("bcd(%#x) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
