package initramfs

// What the initramfs prints on the console, for tests to wait on (see init and profile).
const (
	// StartedMarker is printed by /init first, followed by the running kernel's version.
	StartedMarker = "godwit-initramfs: init started"
	// ModulesMarker is followed by "N loaded, M failed".
	ModulesMarker = "godwit-initramfs: modules: "
	// ReadyMarker is printed by /init just before it hands over to BusyBox init.
	ReadyMarker = "godwit-initramfs: ready"
	// Prompt is the console shell's prompt (PS1 in profile).
	Prompt = "guest# "
)
