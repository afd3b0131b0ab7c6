//! A local disk for lab VMs (issue 18, local boot on UEFI): a raw GPT disk image with one
//! EFI system partition, FAT, holding the removable-media path `\EFI\BOOT\BOOTX64.EFI`: a
//! standalone GRUB (`grub-mkstandalone`, Debian's grub-efi-amd64-bin) whose embedded config
//! prints [`MARKER`] on the console and halts. A VM that shows the marker reached its disk.
//!
//! The partition table is written here ([`gpt`], pure: protective MBR, primary and backup
//! headers and entries, CRC32s); the FAT is made and filled by mtools at the partition's
//! offset, so no loop device and no mount. Not signed: a Secure Boot firmware refuses it.
//!
//! Must not: touch anything outside the work directory it is given.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::LabError;
use super::prereq::Need;

/// What the disk's boot program prints once it runs.
pub const MARKER: &str = "TABULA-LOCAL-DISK-REACHED";
/// The removable-media boot path of x64 UEFI, where the program lies on the ESP.
pub const BOOT_PATH: &str = "/EFI/BOOT/BOOTX64.EFI";

/// What building the disk needs.
pub const NEEDS: &[Need] = &[
    Need::Program("grub-mkstandalone", "grub-common"),
    Need::File("/usr/lib/grub/x86_64-efi/modinfo.sh", "grub-efi-amd64-bin"),
    Need::Program("mformat", "mtools"),
    Need::Program("mmd", "mtools"),
    Need::Program("mcopy", "mtools"),
];

const SECTOR: u64 = 512;
const SECTOR_BYTES: usize = 512;
const DISK_BYTES: usize = 16 << 20;
/// The whole disk: 16 MiB; the ESP from 1 MiB to 1 MiB before the end (room for the backup
/// table).
const DISK_SECTORS: u64 = 16 * 2048;
const ESP_FIRST: u64 = 2048;
const ESP_LAST: u64 = DISK_SECTORS - 2048 - 1;
/// The EFI system partition's type GUID, C12A7328-F81F-11D2-BA4B-00A0C93EC93B, as stored.
const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const TABLE_BYTES: usize = 128 * 128;
const ENTRIES_FIELD: u32 = 128;
const ENTRY_SIZE_FIELD: u32 = 128;
/// Sectors the entry array takes (128 × 128 bytes).
const ENTRY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

/// The GPT of a disk of `sectors` sectors with one ESP over `first..=last`: the bytes of
/// sectors 0 to 33 (protective MBR, header, entries) and of the last 33 (backup entries,
/// backup header). `disk` and `part` are the GUIDs, as stored.
pub fn gpt(
    sectors: u64,
    first: u64,
    last: u64,
    disk: [u8; 16],
    part: [u8; 16],
) -> (Vec<u8>, Vec<u8>) {
    let mut entries = vec![0u8; TABLE_BYTES];
    entries[0..16].copy_from_slice(&ESP_TYPE);
    entries[16..32].copy_from_slice(&part);
    entries[32..40].copy_from_slice(&first.to_le_bytes());
    entries[40..48].copy_from_slice(&last.to_le_bytes());
    for (i, u) in "EFI system partition".encode_utf16().enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    let entries_crc = crc32fast::hash(&entries);
    let header = |mine: u64, other: u64, table: u64| {
        let mut h = vec![0u8; SECTOR_BYTES];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&mine.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 2 - ENTRY_SECTORS).to_le_bytes());
        h[56..72].copy_from_slice(&disk);
        h[72..80].copy_from_slice(&table.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRIES_FIELD.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_SIZE_FIELD.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let mut mbr = vec![0u8; SECTOR_BYTES];
    // One partition of type 0xEE over the whole disk (capped at 2^32 - 1 sectors).
    mbr[446 + 1..446 + 4].copy_from_slice(&[0x00, 0x02, 0x00]);
    mbr[446 + 4] = 0xee;
    mbr[446 + 5..446 + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    let size = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    mbr[446 + 12..446 + 16].copy_from_slice(&size.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut head = mbr;
    head.extend(header(1, sectors - 1, 2));
    head.extend(&entries);
    let mut tail = entries;
    tail.extend(header(sectors - 1, 1, sectors - 1 - ENTRY_SECTORS));
    (head, tail)
}

/// The embedded config of the disk's GRUB: the marker, then halt (QEMU keeps running; the
/// lab stops it).
fn grub_cfg() -> String {
    format!("echo 'tabula lab: the local disk booted'\necho '{MARKER}'\nsleep 2\nhalt\n")
}

/// Builds `<work>/local-disk.img` and returns its path.
pub fn build(work: &Path) -> Result<PathBuf, LabError> {
    super::prereq::check(NEEDS)?;
    let dir = work.join("local-disk");
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let cfg = dir.join("grub.cfg");
    std::fs::write(&cfg, grub_cfg()).map_err(LabError::io(&cfg))?;
    let efi = dir.join("BOOTX64.EFI");
    run(Command::new("grub-mkstandalone")
        .args(["-O", "x86_64-efi", "--locales=", "--fonts=", "--themes="])
        .args(["--install-modules=normal echo sleep halt"])
        .arg("-o")
        .arg(&efi)
        .arg(format!("boot/grub/grub.cfg={}", cfg.display())))?;
    let img = work.join("local-disk.img");
    let (head, tail) = gpt(
        DISK_SECTORS,
        ESP_FIRST,
        ESP_LAST,
        *b"tabula-lab-disk\0",
        *b"tabula-lab-esp\0\0",
    );
    let mut bytes = vec![0u8; DISK_BYTES];
    bytes[..head.len()].copy_from_slice(&head);
    let at = bytes.len() - tail.len();
    bytes[at..].copy_from_slice(&tail);
    std::fs::write(&img, &bytes).map_err(LabError::io(&img))?;
    // mtools addresses the partition as `image@@offset`.
    let part = format!("{}@@{}", img.display(), ESP_FIRST * SECTOR);
    let sectors = (ESP_LAST - ESP_FIRST + 1).to_string();
    run(Command::new("mformat")
        .args([
            "-i",
            &part,
            "-T",
            &sectors,
            "-h",
            "16",
            "-s",
            "32",
            "-v",
            "TABULA-ESP",
        ])
        .arg("::"))?;
    run(Command::new("mmd").args(["-i", &part, "::/EFI", "::/EFI/BOOT"]))?;
    run(Command::new("mcopy")
        .args(["-i", &part])
        .arg(&efi)
        .arg(format!("::{BOOT_PATH}")))?;
    Ok(img)
}

/// QEMU arguments attaching `img` as a read-only virtio disk at boot index `index` (after
/// the NIC's 1).
pub fn qemu_args(img: &Path, index: u8) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "if=none,id=localdisk,format=raw,readonly=on,file={}",
            img.display()
        ),
        "-device".into(),
        format!("virtio-blk-pci,drive=localdisk,bootindex={index}"),
    ]
}

fn run(cmd: &mut Command) -> Result<(), LabError> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| LabError::Command {
        command: name.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: name,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpt_has_one_esp_and_checksums_that_verify() {
        let (head, tail) = gpt(DISK_SECTORS, ESP_FIRST, ESP_LAST, [1; 16], [2; 16]);
        assert_eq!(DISK_BYTES as u64, DISK_SECTORS * SECTOR);
        assert_eq!(TABLE_BYTES as u64, ENTRIES * ENTRY_SIZE);
        assert_eq!(head.len() as u64, (2 + ENTRY_SECTORS) * SECTOR);
        assert_eq!(tail.len() as u64, (1 + ENTRY_SECTORS) * SECTOR);
        assert_eq!(head[450], 0xee);
        assert_eq!(&head[510..512], &[0x55, 0xaa]);
        let primary = &head[512..1024];
        let backup = &tail[tail.len() - 512..];
        for (h, mine, other) in [
            (primary, 1, DISK_SECTORS - 1),
            (backup, DISK_SECTORS - 1, 1),
        ] {
            assert_eq!(&h[..8], b"EFI PART");
            let mut zeroed = h[..92].to_vec();
            zeroed[16..20].fill(0);
            assert_eq!(
                crc32fast::hash(&zeroed).to_le_bytes(),
                h[16..20],
                "header CRC"
            );
            let at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap());
            assert_eq!((at(24), at(32)), (mine, other));
            assert!(at(40) <= ESP_FIRST && ESP_LAST <= at(48));
        }
        let entries = &head[1024..];
        assert_eq!(entries, &tail[..tail.len() - 512]);
        assert_eq!(crc32fast::hash(entries).to_le_bytes(), primary[88..92]);
        assert_eq!(entries[..16], ESP_TYPE);
        assert_eq!(
            u64::from_le_bytes(entries[32..40].try_into().unwrap()),
            ESP_FIRST
        );
        assert_eq!(
            u64::from_le_bytes(entries[40..48].try_into().unwrap()),
            ESP_LAST
        );
        assert!(entries[128..].iter().all(|&b| b == 0), "one entry only");
    }

    #[test]
    fn the_disk_is_after_the_nic() {
        let a = qemu_args(Path::new("/w/local-disk.img"), 2).join(" ");
        assert!(a.contains("readonly=on,file=/w/local-disk.img"), "{a}");
        assert!(
            a.contains("virtio-blk-pci,drive=localdisk,bootindex=2"),
            "{a}"
        );
        assert!(grub_cfg().contains(MARKER));
    }
}
