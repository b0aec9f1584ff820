package hostnet

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpecs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // Specs joined by ","; empty when an error is expected
		err  string // substring of the error
	}{
		{"net0:management:10.0.0.1/24,net1:migration:10.1.0.1/24,net2:vm",
			"net0:management:10.0.0.1/24,net1:migration:10.1.0.1/24,net2:vm", ""},
		{"net0:management:dhcp", "net0:management:dhcp", ""},
		{"52:54:00:12:34:56:migration:10.1.0.2/16,net3:vm,net4:vm",
			"52:54:00:12:34:56:migration:10.1.0.2/16,net3:vm,net4:vm", ""},
		{"52-54-00-AB-CD-EF:vm", "52:54:00:ab:cd:ef:vm", ""},
		{"net10:management:192.168.1.7/31", "net10:management:192.168.1.7/31", ""},
		{"", "", "empty"},
		{"net0", "", "want NIC:ROLE"},
		{"eth0:management:10.0.0.1/24", "", "neither netN nor a MAC"},
		{"net01:vm", "", "neither netN"},
		{"net0:storage:10.0.0.1/24", "", "unknown NIC role"},
		{"net0:management", "", "needs an address"},
		{"net0:migration:", "", "needs an address"},
		{"net0:vm:10.0.0.1/24", "", "takes no address"},
		{"net0:management:10.0.0.1", "", "want IPv4 CIDR"},
		{"net0:management:fe80::1/64", "", "only IPv4"},
		{"net0:management:10.0.0.0/24", "", "network or broadcast"},
		{"net0:management:10.0.0.255/24", "", "network or broadcast"},
		{"net0:management:127.0.0.1/8", "", "not a unicast host"},
		{"net0:management:224.0.0.1/24", "", "not a unicast host"},
		{"net0:management:10.0.0.1/0", "", "prefix length"},
		{"net0:management:10.0.0.1/24,net0:migration:10.1.0.1/24", "", "appears twice"},
		{"net0:management:10.0.0.1/24,net1:management:10.1.0.1/24", "", "already has the management role"},
		{"net0:management:10.0.0.1/24,net1:migration:10.0.0.2/24", "", "overlaps"},
		{"52:54:00:12:34:56:vm,52:54:00:12:34:56:vm", "", "appears twice"},
	} {
		specs, err := ParseSpecs(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadSpec) {
				t.Errorf("ParseSpecs(%q) = %v, %v; want error containing %q", tc.in, specs, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSpecs(%q) = %v", tc.in, err)
			continue
		}
		var got []string
		for _, s := range specs {
			got = append(got, s.String())
		}
		if g := strings.Join(got, ","); g != tc.want {
			t.Errorf("ParseSpecs(%q) = %s, want %s", tc.in, g, tc.want)
		}
	}
}
