package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Role is what a host NIC is for.
type Role int

// The NIC roles of the godwit.net boot option.
const (
	RoleNone       Role = iota // 0 is invalid
	RoleManagement             // the admin network: the shell's tools, the test service
	RoleMigration              // dedicated to live-migration traffic (and the test service)
	RoleVM                     // an uplink for guests' virtual switch; not on the host stack
)

var roleNames = map[Role]string{RoleManagement: "management", RoleMigration: "migration", RoleVM: "vm"}

func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown NIC role %q (want management, migration or vm)", s)
}

// Spec is one NIC's entry of the godwit.net boot option: NIC:ROLE[:ADDRESS].
type Spec struct {
	NIC  string           // "net0", or the NIC's MAC address in canonical form
	Role Role             // what the NIC is for
	Addr netip.Prefix     // the static address with its prefix (management, migration)
	DHCP bool             // the address comes from DHCP instead
	MAC  net.HardwareAddr // set when NIC names a MAC address
}

func (s Spec) String() string {
	out := s.NIC + ":" + s.Role.String()
	switch {
	case s.DHCP:
		out += ":dhcp"
	case s.Addr.IsValid():
		out += ":" + s.Addr.String()
	}
	return out
}

// ErrBadSpec marks a godwit.net value that does not parse.
var ErrBadSpec = errors.New("bad godwit.net spec")

// ParseSpecs reads the godwit.net boot option:
//
//	godwit.net=net0:management:10.0.0.1/24,net1:migration:dhcp,52:54:00:12:34:58:vm
//
// Entries are NIC:ROLE[:ADDRESS] separated by commas. NIC is netN or a MAC address; ROLE is
// management, migration or vm; ADDRESS is an IPv4 address in CIDR form or "dhcp", required
// for management and migration, refused for vm. At most one NIC has the management role and
// one the migration role; a NIC appears once; no two NICs share a subnet.
func ParseSpecs(val string) ([]Spec, error) {
	if strings.TrimSpace(val) == "" {
		return nil, fmt.Errorf("%w: empty (want NIC:ROLE[:ADDRESS],...)", ErrBadSpec)
	}
	var specs []Spec
	seenNIC := map[string]bool{}
	seenRole := map[Role]string{}
	for _, ent := range strings.Split(val, ",") {
		s, err := parseSpec(ent)
		if err != nil {
			return nil, err
		}
		if seenNIC[s.NIC] {
			return nil, fmt.Errorf("%w: %q: NIC %s appears twice", ErrBadSpec, ent, s.NIC)
		}
		seenNIC[s.NIC] = true
		if s.Role != RoleVM {
			if other, ok := seenRole[s.Role]; ok {
				return nil, fmt.Errorf("%w: %q: %s already has the %s role", ErrBadSpec, ent, other, s.Role)
			}
			seenRole[s.Role] = s.NIC
			for _, o := range specs {
				if s.Addr.IsValid() && o.Addr.IsValid() && (o.Addr.Contains(s.Addr.Addr()) || s.Addr.Contains(o.Addr.Addr())) {
					return nil, fmt.Errorf("%w: %q: subnet overlaps %s's %s", ErrBadSpec, ent, o.NIC, o.Addr)
				}
			}
		}
		specs = append(specs, s)
	}
	return specs, nil
}

func parseSpec(ent string) (Spec, error) {
	ent = strings.TrimSpace(ent)
	// A MAC address has five colons of its own: take it off the front first.
	var s Spec
	var rest string
	if len(ent) >= 17 {
		if mac, err := net.ParseMAC(ent[:17]); err == nil && len(mac) == 6 && (len(ent) == 17 || ent[17] == ':') {
			s.MAC = mac
			s.NIC = mac.String()
			rest = strings.TrimPrefix(ent[17:], ":")
		}
	}
	if s.MAC == nil {
		name, r, ok := strings.Cut(ent, ":")
		if !ok {
			return Spec{}, fmt.Errorf("%w: %q: want NIC:ROLE[:ADDRESS]", ErrBadSpec, ent)
		}
		if !validNICName(name) {
			return Spec{}, fmt.Errorf("%w: %q: NIC %q is neither netN nor a MAC address", ErrBadSpec, ent, name)
		}
		s.NIC, rest = name, r
	}
	roleStr, addr, hasAddr := strings.Cut(rest, ":")
	role, err := ParseRole(roleStr)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: %q: %v", ErrBadSpec, ent, err)
	}
	s.Role = role
	switch {
	case role == RoleVM && hasAddr:
		return Spec{}, fmt.Errorf("%w: %q: a vm uplink takes no address", ErrBadSpec, ent)
	case role == RoleVM:
	case !hasAddr || addr == "":
		return Spec{}, fmt.Errorf("%w: %q: a %s NIC needs an address (CIDR like 10.0.0.1/24, or dhcp)", ErrBadSpec, ent, role)
	case addr == "dhcp":
		s.DHCP = true
	default:
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			return Spec{}, fmt.Errorf("%w: %q: address %q: want IPv4 CIDR like 10.0.0.1/24 or dhcp", ErrBadSpec, ent, addr)
		}
		if err := checkHostPrefix(p); err != nil {
			return Spec{}, fmt.Errorf("%w: %q: %v", ErrBadSpec, ent, err)
		}
		s.Addr = p
	}
	return s, nil
}

func validNICName(n string) bool {
	if len(n) < 4 || !strings.HasPrefix(n, "net") {
		return false
	}
	for _, c := range n[3:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(n) == 4 || n[3] != '0'
}

// checkHostPrefix refuses what cannot be a host's own IPv4 address. RFC 1122, 3.2.1.3
// (0/8, 127/8, broadcast), RFC 5771 (224/4 multicast), RFC 1112 (240/4 reserved); RFC 950 and
// RFC 3021 for the network and broadcast addresses of a subnet (allowed on a /31).
func checkHostPrefix(p netip.Prefix) error {
	a := p.Addr()
	if !a.Is4() {
		return fmt.Errorf("%s: only IPv4 addresses are supported", p)
	}
	if p.Bits() < 1 || p.Bits() > 32 {
		return fmt.Errorf("%s: prefix length must be 1..32", p)
	}
	b := a.As4()
	switch {
	case b[0] == 0, a.IsLoopback(), a.IsMulticast(), b[0] >= 240:
		return fmt.Errorf("%s: not a unicast host address", p)
	}
	if p.Bits() <= 30 {
		host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		mask := ^uint32(0) >> p.Bits()
		if host&mask == 0 || host&mask == mask {
			return fmt.Errorf("%s: the subnet's network or broadcast address", p)
		}
	}
	return nil
}
