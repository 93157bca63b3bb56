package config

import (
	"fmt"
	"strings"
	"time"

	// Schedules name IANA zones; embedding the database makes them load on
	// machines (containers, Windows) without a system zoneinfo.
	_ "time/tzdata"
)

// Schedule is a team's opening hours. Timezone, Hours and HolidayDates are
// what the file says; Location, Weekly and Holidays are derived from them
// by Load and are what Open uses.
type Schedule struct {
	Timezone string `koanf:"timezone" json:"timezone"`
	// Hours maps a day spec (mon, mon-fri, fri-mon, sat,sun) to intervals
	// written "09:00-18:00".
	Hours        map[string][]string `koanf:"hours" json:"hours"`
	HolidayDates []string            `koanf:"holidays" json:"holidays,omitempty"`

	Location *time.Location `koanf:"-" json:"-"`
	// Weekly is indexed by time.Weekday; intervals are sorted by start.
	Weekly [7][]Interval `koanf:"-" json:"-"`
	// Holidays holds the closed days as "2006-01-02" in Location.
	Holidays map[string]bool `koanf:"-" json:"-"`
}

// Interval is [Start, End) in minutes since local midnight; End may be 1440.
type Interval struct {
	Start, End int
}

func (iv Interval) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", iv.Start/60, iv.Start%60, iv.End/60, iv.End%60)
}

// Open reports whether t falls within the schedule. It uses the wall clock
// of the schedule's zone, so opening hours follow DST changes: 09:00 is
// 09:00 local on both sides of a transition, and an hour skipped in spring
// simply does not occur.
func (s *Schedule) Open(t time.Time) bool {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	if s.Holidays[lt.Format(time.DateOnly)] {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	for _, iv := range s.Weekly[lt.Weekday()] {
		if m >= iv.Start && m < iv.End {
			return true
		}
	}
	return false
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

const daySpecHelp = "use mon, tue, wed, thu, fri, sat or sun, a range such as mon-fri, or a list such as sat,sun"

// parseDays reads a day spec. Ranges may wrap around the week (fri-mon).
func parseDays(spec string) ([]time.Weekday, error) {
	var out []time.Weekday
	for _, tok := range strings.Split(spec, ",") {
		tok = strings.ToLower(strings.TrimSpace(tok))
		from, to, isRange := strings.Cut(tok, "-")
		a, ok := dayNames[strings.TrimSpace(from)]
		if !ok {
			return nil, fmt.Errorf("unknown day %q: %s", strings.TrimSpace(from), daySpecHelp)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, ok := dayNames[strings.TrimSpace(to)]
		if !ok {
			return nil, fmt.Errorf("unknown day %q: %s", strings.TrimSpace(to), daySpecHelp)
		}
		for d := a; ; d = (d + 1) % 7 {
			out = append(out, d)
			if d == b {
				break
			}
		}
	}
	return out, nil
}

// parseInterval reads "HH:MM-HH:MM"; 24:00 is allowed as an end so that a
// day can be open until midnight.
func parseInterval(s string) (Interval, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Interval{}, fmt.Errorf("bad interval %q: write HH:MM-HH:MM, such as 09:00-18:00", s)
	}
	start, err := parseClock(strings.TrimSpace(from), false)
	if err != nil {
		return Interval{}, fmt.Errorf("bad interval %q: %v", s, err)
	}
	end, err := parseClock(strings.TrimSpace(to), true)
	if err != nil {
		return Interval{}, fmt.Errorf("bad interval %q: %v", s, err)
	}
	if start >= end {
		return Interval{}, fmt.Errorf("bad interval %q: the start must be before the end (for hours past midnight, list the next day separately, ending this one at 24:00)", s)
	}
	return Interval{Start: start, End: end}, nil
}

func parseClock(s string, isEnd bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(m) != 2 || len(h) < 1 || len(h) > 2 || !allDigits(h) || !allDigits(m) {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	hh := int(h[0] - '0')
	if len(h) == 2 {
		hh = hh*10 + int(h[1]-'0')
	}
	mm := int(m[0]-'0')*10 + int(m[1]-'0')
	if mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !isEnd)) {
		return 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59, or 24:00 as an end)", s)
	}
	return hh*60 + mm, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
