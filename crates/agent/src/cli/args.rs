//! The `speediso` command line's definitions: every subcommand and flag,
//! as clap reads them and `--help` prints them. A leaf of the CLI layer: the
//! handlers in `cli` use it; it holds no logic. Each module's own ad-hoc
//! flags (`bench cpu`, `bench net`, ...) are defined beside the module.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
Exit status: 0 success, 1 a step failed, 2 bad arguments or rejected task,
3 destructive task not confirmed, 4 time limit reached.

The task comes from the SPEEDISO environment variable, else from the kernel
command line (systemd.setenv=SPEEDISO=<task> or speediso.task=<task>).
Options are speediso.<key>=<value> on the kernel command line; see
`speediso tasks --options`.";

/// speediso: the agent of the PXE-booted speediso live image.
///
/// It reads the task the boot asked for, runs it as a systemd unit and
/// streams every event to the console, the journal and the report endpoint.
#[derive(Debug, Parser)]
#[command(name = "speediso", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Also read task files from DIR (after /usr/lib/speediso/tasks and
    /// /etc/speediso/tasks; later directories win). Also SPEEDISO_TASKS_DIR.
    #[arg(long, global = true, value_name = "DIR")]
    pub tasks_dir: Vec<PathBuf>,

    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Use STR instead of /proc/cmdline (for tests).
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "STR",
        allow_hyphen_values = true
    )]
    pub cmdline: Option<String>,

    /// Read /proc, /sys and /dev under DIR instead of / (for tests).
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "DIR",
        default_value = "/"
    )]
    pub root: PathBuf,

    /// Runtime state directory (default /run/speediso; also SPEEDISO_RUN_DIR).
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the task the boot asked for as speediso@<task>.service and wait
    /// for it (what speediso-dispatch.service runs at boot).
    ///
    /// With no task, an empty one or an unknown one, nothing runs: the
    /// console and the report endpoint say which value was rejected and
    /// which tasks exist, and the image stays up for SSH.
    Dispatch {
        /// Resolve and validate the task, print the plan, start nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan (with --dry-run) or events as JSON.
        #[arg(long)]
        json: bool,
        /// Give up waiting for the task's job after this long (e.g. 30m);
        /// default: the task's time limit plus 5 minutes.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        wait: Option<Duration>,
    },
    /// Run a task's steps in the foreground, emitting events.
    ///
    /// This is what speediso@<task>.service runs. A destructive task (wipe,
    /// decommission, lininstall) runs only when the boot command line asked
    /// for it, or with --confirm naming the task.
    Run {
        /// The task to run (see `speediso tasks`).
        task: String,
        /// Print events as JSON lines on stdout instead of readable lines.
        #[arg(long)]
        json: bool,
        /// Confirm that the destructive task TASK may run on this machine.
        #[arg(long, value_name = "TASK")]
        confirm: Option<String>,
    },
    /// List tasks, their steps, and whether they are destructive.
    Tasks {
        #[arg(long)]
        json: bool,
        /// List the speediso.* kernel command line options instead.
        #[arg(long)]
        options: bool,
    },
    /// Securely erase disks: firmware erase or overwrite, read-back
    /// verification and a signed certificate per disk.
    ///
    /// Without --plan, every disk to be erased must be named with --confirm
    /// (its serial number, or its path when it has none); otherwise nothing
    /// is erased and the plan is printed.
    Wipe(WipeArgs),
    /// One core's throughput of the wipe's random-pattern generators
    /// (AES-128-CTR and ChaCha8), written and XORed; what benches/stream.sh
    /// compares with `openssl speed`.
    #[command(hide = true)]
    StreamBench {
        /// Seconds of user CPU time per measurement (`openssl speed` also
        /// divides by user CPU time).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Buffer size in bytes (the engine's is 1 MiB).
        #[arg(long, default_value_t = 1 << 20)]
        chunk: usize,
        /// Only this algorithm (aes-128-ctr or chacha8), e.g. to profile it.
        #[arg(long, value_name = "ALG", value_parser = clap::builder::PossibleValuesParser::new(["aes-128-ctr", "chacha8"]))]
        only: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Check an erasure certificate's Ed25519 signature.
    VerifyCert {
        /// The certificate (JSON).
        file: PathBuf,
        /// The public key: 64 hex digits, or a file holding them.
        #[arg(long, value_name = "KEY")]
        pubkey: String,
    },
    /// Hardware inventory: PCI (named like lspci), CPU, memory and DIMMs,
    /// DMI, disks with filesystems, NICs, boot mode. Read from /sys, /proc,
    /// /dev and the SMBIOS tables; runs no tool unless --smart.
    ///
    /// NICs carry what `ethtool -i` says (driver version, firmware, bus
    /// info), the permanent MAC and the supported and advertised link
    /// modes. With --lldp, also the LLDP neighbours heard on every NIC with
    /// carrier: the switch's name, port ID and description, VLANs,
    /// management address, link aggregation and frame size. Switches send
    /// LLDP every 30 s by default, so --lldp may wait that long; it returns
    /// as soon as every NIC with carrier has heard a neighbour. Without
    /// --lldp nothing waits. (The inventory step of a booted task listens
    /// by default, for speediso.lldp.wait, 35 s unless set; 0 turns it off.)
    #[command(after_help = "\
Examples:
  speediso inventory                 everything but LLDP, at once
  speediso inventory --lldp          also LLDP neighbours, waiting up to 35 s
  speediso inventory --lldp-wait 65  wait up to 65 s (two 30 s intervals)
  speediso inventory --json --lldp   the same as one JSON document")]
    Inventory {
        /// Print the inventory as one JSON document.
        #[arg(long)]
        json: bool,
        /// pci.ids to name PCI devices from (default: /usr/share/hwdata/pci.ids,
        /// /usr/share/misc/pci.ids).
        #[arg(long, value_name = "PATH")]
        pci_ids: Option<PathBuf>,
        /// Also ask smartctl for the SMART health of NVMe/SATA/SAS disks.
        #[arg(long)]
        smart: bool,
        /// Also listen for LLDP neighbours on every NIC with carrier, for up
        /// to --lldp-wait (needs root: a raw socket per NIC).
        #[arg(long)]
        lldp: bool,
        /// How long --lldp listens at most: seconds or 35s, 2m (default:
        /// speediso.lldp.wait from the boot line, else 35 s). Implies --lldp;
        /// 0 turns LLDP off.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        lldp_wait: Option<Duration>,
        /// Also list the virtual interface NAME (veth, bond, bridge) as a NIC
        /// and, with --lldp, listen for LLDP on it; repeatable. Only interfaces
        /// with a device (physical NICs) are listed otherwise.
        #[arg(long, value_name = "NAME")]
        nic: Vec<String>,
    },
    /// What is wrong with this machine? One verdict (PASS, WARN or FAIL)
    /// with findings, read from /sys, /proc and /dev.
    ///
    /// Checks: ECC memory errors (EDAC, per DIMM with its label), machine
    /// checks in the kernel log (/dev/kmsg), CPU thermal throttle counts,
    /// hwmon temperatures, fans and voltages against their own max/crit/
    /// alarm values, PCIe AER error counts and links trained below their
    /// maximum, NIC error/drop/carrier counters, the disks' own health
    /// (NVMe SMART/Health log and self-test log, ATA SMART attributes and
    /// self-test log, read natively), and the expected hardware
    /// (speediso.expect.cpu_threads, .memory_gib, .dimm_count, .disk_count,
    /// .disk_min_gb, .nic_count, .nic_speed_mbps, .gpu_count).
    /// Thresholds are speediso.health.max_* options (task files: the step
    /// keys); see `speediso tasks --options`.
    ///
    /// Each finding names its component (DIMM, PCI address, NIC, CPU,
    /// sensor), the value read and its file, and the threshold. Severities:
    /// FAIL: broken now or about to be (an uncorrected memory or PCIe error,
    /// a machine check, a sensor at its critical limit or alarm, hardware
    /// missing against what was expected); WARN: worth a look (corrected
    /// errors above the threshold, throttling, a sensor above max, a link
    /// trained down, NIC errors, a value that could not be read); INFO:
    /// what could not be checked here (no EDAC driver, no sensors). The
    /// verdict is the worst severity; INFO never changes it.
    ///
    /// Exit status: 0 PASS or WARN, 1 FAIL, 2 a bad speediso.* option.
    Health {
        /// Print the report as one JSON document (the `result` of a
        /// `health` task step).
        #[arg(long)]
        json: bool,
    },
    /// Burn-in parts by hand: load the hardware and check it while it
    /// runs. The `burnin` task runs them all between two health snapshots.
    ///
    /// A wrong answer or an unreadable block fails; a slow one does not
    /// (that is `speediso bench`).
    Burnin {
        #[command(subcommand)]
        part: BurninCmd,
    },
    /// SSH access from the boot line: root's keys from speediso.ssh_key=.
    SshKeys {
        #[command(subcommand)]
        action: SshKeysCmd,
    },
    /// What is this machine doing? The boot's task, its unit's state, the
    /// last events and results.
    Status {
        #[arg(long)]
        json: bool,
        /// How many recent events to show.
        #[arg(long, default_value_t = 15)]
        events: usize,
    },
    /// Write a verified disk image to a disk (raw, .gz, .xz, .zst from
    /// http, https or file URLs), or load an installer kernel for kexec.
    ///
    /// Options default to speediso.install.* from the command line. Image
    /// mode writes only with --confirm naming the target (its serial, or
    /// its path when it has none); otherwise it prints the target and
    /// writes nothing.
    Install(InstallArgs),
    /// Run one speed test now and print its figures (the same code as the
    /// bench.* task steps).
    Bench {
        /// Print the result as JSON on stdout (progress goes to stderr).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        what: BenchCmd,
    },
}

/// `speediso wipe` flags.
#[derive(Debug, clap::Args)]
pub struct WipeArgs {
    /// Show what would be erased, how, and why other disks are skipped;
    /// erase nothing.
    #[arg(long)]
    pub plan: bool,
    /// A disk to erase (repeatable).
    #[arg(long, value_name = "PATH")]
    pub device: Vec<String>,
    /// Every eligible disk.
    #[arg(long, conflicts_with = "device")]
    pub all: bool,
    /// Method (default: speediso.wipe.method, else auto).
    #[arg(long, value_name = "M", value_parser = clap::builder::PossibleValuesParser::new(crate::wipe::METHODS))]
    pub method: Option<String>,
    /// full, sample:FRACTION or off (default: speediso.wipe.verify, else full).
    #[arg(long, value_name = "MODE")]
    pub verify: Option<String>,
    /// Confirm each disk by serial number (or path when it has none).
    #[arg(long, value_name = "SERIAL_OR_PATH", num_args = 1..)]
    pub confirm: Vec<String>,
    /// Overwrite passes (zero, random).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=35))]
    pub passes: Option<u32>,
    /// Random pattern keystream: auto (AES-128-CTR where the CPU has AES
    /// instructions, else ChaCha8), aes or chacha8. Either verifies on any
    /// machine; force chacha8 for fleets whose certificates are checked on
    /// CPUs without AES instructions (software AES is slower there)
    /// (default: speediso.wipe.stream, else auto).
    #[arg(long, value_name = "ALG", value_parser = clap::builder::PossibleValuesParser::new(crate::wipe::stream::CHOICES))]
    pub stream: Option<String>,
    /// Overwrite with zeros after a firmware erase.
    #[arg(long)]
    pub blank: bool,
    /// Ed25519 signing key file (default: speediso.wipe.key, else a key
    /// generated for this run).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Print the plan or events as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Disk image URL (http, https or file).
    #[arg(long, value_name = "URL")]
    pub image: Option<String>,
    /// SHA-256 of the image as served (required unless --insecure).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Target disk: a /dev path, serial=SERIAL, wwn=WWN or smallest.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Write an image without a checksum.
    #[arg(long)]
    pub insecure: bool,
    /// Installer kernel URL (kexec mode).
    #[arg(long, value_name = "URL")]
    pub kernel: Option<String>,
    /// Installer initrd URL (kexec mode).
    #[arg(long, value_name = "URL")]
    pub initrd: Option<String>,
    /// Installer kernel command line (kexec mode).
    #[arg(long, value_name = "STR")]
    pub append: Option<String>,
    /// SHA-256 of the kernel (kexec mode).
    #[arg(long, value_name = "HEX")]
    pub kernel_sha256: Option<String>,
    /// SHA-256 of the initrd (kexec mode).
    #[arg(long, value_name = "HEX")]
    pub initrd_sha256: Option<String>,
    /// Confirm the target disk by serial number (or path when it has none).
    #[arg(long, value_name = "SERIAL_OR_PATH")]
    pub confirm: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `speediso bench <what>`: one variant per benchmark module.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// sysbench-compatible prime search, SHA-256 and deflate, single and all threads.
    Cpu(crate::bench::cpu::CpuArgs),
    /// STREAM copy/scale/add/triad bandwidth, pointer-chase latency, pattern check.
    Memory(crate::bench::memory::MemoryArgs),
    /// fio-comparable seq/rand read/write jobs with O_DIRECT and io_uring.
    Disk(crate::bench::disk::DiskArgs),
    /// Network throughput: an iperf3-compatible client against a stock
    /// `iperf3 -s`, and/or an HTTP(S) download. With --json: the event
    /// stream as JSON lines.
    Net(crate::netbench::NetArgs),
}

pub fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    speediso_proto::units::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 90s, 30m or 4h"))
}

#[derive(Debug, Subcommand)]
pub enum SshKeysCmd {
    /// Install the public keys of speediso.ssh_key= for root (what
    /// speediso-ssh-keys.service runs before sshd starts).
    ///
    /// speediso.ssh_key= takes URL-safe base64 (padding optional) of
    /// authorized_keys lines, e.g. `base64 -w0 id_ed25519.pub | tr '+/' '-_'`;
    /// several values comma-separated or the option repeated; or an http(s)
    /// URL of an authorized_keys file with its SHA-256 as the fragment:
    /// `https://keys.example.net/ops.pub#sha256=<64 hex>` (fetched, checked,
    /// a few tries while the network comes up). Accepted: ssh-ed25519,
    /// ecdsa-sha2-nistp256/384/521, ssh-rsa of 2048 bits or more, and the
    /// sk-* security-key variants; each key's data is checked against its
    /// type. One bad key installs nothing and exits 2, naming it.
    ///
    /// The keys go into /root/.ssh/authorized_keys (0700 directory, 0600
    /// file, written whole and renamed) between `# speediso.ssh_key:`
    /// marker lines; lines the image already had are kept, and a rerun
    /// replaces only its own block. Without the option, the block is
    /// removed (nothing else changes).
    Install {
        /// Check and print the keys; write nothing.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BurninCmd {
    /// Run the disks' own self-tests (NVMe Device Self-test, ATA SMART
    /// self-test) on every NVMe, SATA and SAS disk, in parallel, polled
    /// every 5 s with progress; read-only for the data on them.
    ///
    /// Outcome per disk: passed, failed (with the device's words and the
    /// first failing LBA), aborted, refused (the disk declined), unsupported
    /// (no self-test feature), timed out. Exit status: 0 every disk passed,
    /// 1 one failed, 3 none failed but some could not be tested (refused,
    /// unsupported, timed out), 2 a bad option.
    Selftest {
        /// short (about 2 minutes) or extended (a full read of the media:
        /// hours on large disks).
        #[arg(long, value_name = "KIND", default_value = "short")]
        kind: String,
        /// Longest wait for one disk's test (default 30m short, 24h extended).
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
        /// Only this disk (repeatable), by path (/dev/nvme0n1).
        #[arg(long, value_name = "PATH")]
        disk: Vec<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// The GPUs under load: `dcgmi diag -r LEVEL -j` (NVIDIA DCGM) when it
    /// is in the image, its tests' results per GPU; else `gpu_burn` for
    /// --duration (each GPU OK or FAULTY); else it says the image has no GPU
    /// stress tool. A machine without a GPU skips.
    ///
    /// Exit status: 0 every test passed (or no GPU), 1 a test failed, 3 no
    /// tool or no usable result (the GPUs were not judged), 2 a bad option.
    Gpu {
        /// dcgmi diag level: 1 quick (about a minute), 2 medium, 3 long,
        /// 4 extended (about 90 minutes). Default 2.
        #[arg(long, value_name = "N")]
        level: Option<String>,
        /// How long gpu_burn runs when DCGM is not in the image (default 10m).
        #[arg(long, value_name = "DURATION")]
        duration: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Every CPU busy with checked work: a SHA-256 chain, an f64 matrix
    /// product and a prime sieve, one worker pinned to each CPU, every
    /// answer compared with the known one.
    ///
    /// A wrong answer fails naming the worker, its CPU, the workload, the
    /// expected and the computed value. The result also gives each
    /// workload's checked operations per second and the largest rise of a
    /// CPU's thermal throttle count during the run.
    ///
    /// Exit status: 0 PASS, 1 a wrong answer, 2 a bad option.
    ///
    /// Example: speediso burnin cpu --duration 10m
    Cpu(crate::burnin::cpu::CpuArgs),
    /// Read every block of every disk (read-only, O_DIRECT), disks in
    /// parallel, and report unreadable LBA ranges with the kernel's error.
    ///
    /// Without --disk: every whole disk but the live medium, loop, ram,
    /// zram, optical and device-mapper devices and those in
    /// speediso.burnin.scan_exclude (serials, WWNs or paths). Nothing is
    /// ever written.
    ///
    /// Exit status: 0 PASS (every disk read whole), 1 FAIL (an unreadable
    /// range, a disk that went away, nothing scanned), 2 a bad option.
    ///
    /// Example: speediso burnin scan --disk /dev/sda --disk /dev/nvme0n1
    Scan(crate::burnin::scan::ScanArgs),
    /// Memory pattern test on every core over 90% of available memory.
    ///
    /// Each pass writes ten patterns over the region and reads each back:
    /// zeros, ones, checkerboard, walking ones, walking zeros, a seeded
    /// random stream, and address-in-address (each 8-byte word holds its
    /// own address), each followed by its inversion. The region is split
    /// into one slice per thread; each thread writes and checks its own
    /// slice. Pages are locked in memory (mlock) when the limits allow.
    ///
    /// Size: --share of MemAvailable (default 0.9, or
    /// speediso.burnin.memory_share), or --size. Length: one pass by
    /// default; --passes N; --duration D starts passes until D has passed
    /// (the pass in progress finishes); with both, whichever comes first. A
    /// pass that finds a bad word is the last.
    ///
    /// A bad word FAILs the test. For each (the first 16, and a count) it
    /// shows the pattern, the offset and virtual address, the physical
    /// address (from /proc/self/pagemap: needs root, else it says why it is
    /// unavailable), the value written, the value read and the bits that
    /// differ; and the DIMM whose EDAC error counters rose during the test,
    /// or that the kernel gave no DIMM mapping.
    ///
    /// Exit status: 0 PASS, 1 FAIL (or the test could not run), 2 a bad
    /// option.
    ///
    /// Example: speediso burnin memory --size 16G --passes 2
    Memory(crate::burnin::memory::MemoryArgs),
}
