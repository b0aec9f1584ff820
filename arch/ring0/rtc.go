package ring0

import "github.com/godwit-hv/godwit/arch/x86"

// CMOS real-time clock. MC146818A datasheet, "Address Map" and "Register B"; the PC century
// register at 0x32 is the ACPI FADT's usual CENTURY index.
const (
	cmosIndex  = 0x70
	cmosData   = 0x71
	cmosNMIOff = 0x80
	rtcSec     = 0x00
	rtcMin     = 0x02
	rtcHour    = 0x04
	rtcDay     = 0x07
	rtcMonth   = 0x08
	rtcYear    = 0x09
	rtcStatusA = 0x0A
	rtcStatusB = 0x0B
	rtcCentury = 0x32
	rtcUIP     = 0x80 // status A: update in progress
	rtcBinary  = 0x04 // status B: binary, not BCD
	rtc24h     = 0x02 // status B: 24-hour mode
)

var wallBootNs int64 // Unix time in ns at nanotime() == 0

func cmosRead(reg byte) byte {
	x86.Outb(cmosIndex, cmosNMIOff|reg)
	return x86.Inb(cmosData)
}

func bcd(v byte) int64 { return int64(v>>4)*10 + int64(v&0xF) }

// rtcRead returns the RTC's time as Unix seconds (the RTC keeps UTC on these hosts).
func rtcRead() int64 {
	for i := 0; i < 1_000_000 && cmosRead(rtcStatusA)&rtcUIP != 0; i++ {
	}
	sec, min, hour := cmosRead(rtcSec), cmosRead(rtcMin), cmosRead(rtcHour)
	day, mon, year, cent := cmosRead(rtcDay), cmosRead(rtcMonth), cmosRead(rtcYear), cmosRead(rtcCentury)
	b := cmosRead(rtcStatusB)
	pm := hour&0x80 != 0
	hour &^= 0x80
	conv := func(v byte) int64 {
		if b&rtcBinary != 0 {
			return int64(v)
		}
		return bcd(v)
	}
	h := conv(hour)
	if b&rtc24h == 0 { // 12-hour mode: 12 AM is 0, 12 PM is 12
		h %= 12
		if pm {
			h += 12
		}
	}
	y := conv(year)
	if c := conv(cent); c >= 19 && c <= 30 {
		y += c * 100
	} else if y < 70 {
		y += 2000
	} else {
		y += 1900
	}
	return unixDays(y, conv(mon), conv(day))*86400 + h*3600 + conv(min)*60 + conv(sec)
}

// unixDays converts a civil date to days since 1970-01-01 (proleptic Gregorian).
func unixDays(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
