//! STE encoding against `STRTAB_STE_*` of Linux's `arm-smmu-v3.h` and the
//! values in `smmuv3.md`; stage-2 configuration checks.

use std::alloc::{Layout, alloc_zeroed, dealloc};

use super::fake::QEMU_S2;
use super::s2;
use crate::mm::pagetable::{PageTable, Stage2, TableMemory};
use crate::smmu::SmmuError;
use crate::smmu::idregs::Features;
use crate::smmu::regs::genmask;
use crate::smmu::ste::{S2Config, Ste, SteConfig, SteOptions};

const COHERENT: SteOptions = SteOptions {
    coherent_walk: true,
    shcfg_incoming: false,
};

#[test]
fn word0_values() {
    // smmuv3.md: "Stage-2-only valid STE: d0 = 0xD"; abort V=1 Config=0,
    // bypass Config=0b100.
    assert_eq!(Ste::ABORT.0, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Ste::bypass(SteOptions::default()).0[0], 0x9);
    assert_eq!(Ste::stage2(&s2(1), COHERENT).0[0], 0xd);
    assert_eq!(Ste::INVALID.config(), SteConfig::Invalid);
    assert_eq!(Ste::ABORT.config(), SteConfig::Abort);
}

#[test]
fn config_field_decodes_every_value() {
    let expect = [
        SteConfig::Abort,
        SteConfig::Reserved(1),
        SteConfig::Reserved(2),
        SteConfig::Reserved(3),
        SteConfig::Bypass,
        SteConfig::Stage1,
        SteConfig::Stage2,
        SteConfig::Nested,
    ];
    for (cfg, want) in expect.into_iter().enumerate() {
        let ste = Ste([1 | (cfg as u64) << 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ste.config(), want, "config {cfg}");
        // V = 0 wins over any Config.
        assert_eq!(
            Ste([(cfg as u64) << 1, 0, 0, 0, 0, 0, 0, 0]).config(),
            SteConfig::Invalid
        );
    }
    assert!(!SteConfig::Abort.uses_more_than_word0());
    assert!(SteConfig::Bypass.uses_more_than_word0());
    assert!(SteConfig::Stage2.uses_more_than_word0());
}

#[test]
fn stage2_words_match_linux_fields() {
    let cfg = S2Config {
        vmid: 5,
        t0sz: 24,
        sl0: 1,
        ps: 4,
        root: 0x8_1234_5000 | 0xfff, // low bits dropped by S2TTB[51:4]
    };
    let ste = Ste::stage2(&cfg, COHERENT);
    // STRTAB_STE_2_VTCR is GENMASK(50, 32); inside it T0SZ[5:0],
    // SL0[7:6], IR0[9:8], OR0[11:10], SH0[13:12], TG[15:14], PS[18:16].
    let vtcr: u64 = 24 | 1 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | 4 << 16;
    let d2 = 5 | vtcr << 32 | 1 << 51 /* S2AA64 */ | 1 << 54 /* S2PTW */ | 1 << 58 /* S2R */;
    assert_eq!(ste.0[2], d2);
    assert_eq!(ste.0[2], 0x044c_3558_0000_0005);
    assert_eq!(ste.0[3], (0x8_1234_5fff & genmask(51, 4)));
    assert_eq!(ste.0[1], 0);
    assert_eq!(&ste.0[4..], &[0; 4]);

    let back = ste.s2_config().expect("stage 2");
    assert_eq!(
        back,
        S2Config {
            root: 0x8_1234_5ff0,
            ..cfg
        }
    );
    let f = ste.s2_fields();
    assert_eq!((f.ir0, f.or0, f.sh0, f.tg), (1, 1, 3, 0));
    assert!(f.aa64 && f.ptw && f.record);
    assert!(!f.endi && !f.affd && !f.stall && !f.hw_update);
    assert_eq!(ste.vmid(), 5);
}

#[test]
fn stage2_non_coherent_walk_and_shcfg() {
    let opts = SteOptions {
        coherent_walk: false,
        shcfg_incoming: true,
    };
    let ste = Ste::stage2(&s2(3), opts);
    let f = ste.s2_fields();
    assert_eq!((f.ir0, f.or0, f.sh0), (0, 0, 2));
    // STRTAB_STE_1_SHCFG GENMASK(45, 44) = 1 (incoming).
    assert_eq!(ste.0[1], 1 << 44);
    assert!(ste.shcfg_incoming());
    assert!(Ste::bypass(opts).shcfg_incoming());
}

#[test]
fn fields_never_spill() {
    let cfg = S2Config {
        vmid: 0xffff,
        t0sz: 0xff,
        sl0: 0xff,
        ps: 0xff,
        root: u64::MAX,
    };
    let ste = Ste::stage2(&cfg, COHERENT);
    assert_eq!(ste.0[0], 0xd);
    assert_eq!(ste.0[3], genmask(51, 4));
    let back = ste.s2_config().expect("stage 2");
    assert_eq!((back.t0sz, back.sl0, back.ps), (0x3f, 3, 7));
}

fn features() -> Features {
    Features::decode(QEMU_S2)
}

#[test]
fn check_accepts_the_test_config() {
    assert_eq!(s2(1).check(&features()), Ok(()));
    // Level 0 start with 48-bit input, 48-bit output.
    let mut f = features();
    f.oas_field = 5;
    let cfg = S2Config {
        t0sz: 16,
        sl0: 2,
        ps: 5,
        ..s2(1)
    };
    assert_eq!(cfg.check(&f), Ok(()));
}

#[test]
fn check_refuses_bad_configs() {
    let f = features();
    let bad = |cfg: S2Config, f: &Features| match cfg.check(f) {
        Err(SmmuError::BadConfig(why)) => why,
        other => panic!("{cfg:?} accepted: {other:?}"),
    };
    let mut no16 = f;
    no16.vmid16 = false;
    assert!(bad(s2(0x100), &no16).contains("VMID"));
    assert_eq!(s2(0xff).check(&no16), Ok(()));
    assert!(bad(S2Config { ps: 5, ..s2(1) }, &f).contains("OAS"));
    assert!(bad(S2Config { ps: 7, ..s2(1) }, &f).contains("reserved"));
    // 44-bit PS: IPA of 45 bits too wide; T0SZ above 39 too narrow.
    assert!(bad(S2Config { t0sz: 19, ..s2(1) }, &f).contains("T0SZ"));
    assert!(bad(S2Config { t0sz: 40, ..s2(1) }, &f).contains("T0SZ"));
    assert!(bad(S2Config { sl0: 3, ..s2(1) }, &f).contains("S2SL0"));
    // 40 bits from level 2: 2^19 root entries.
    assert!(bad(S2Config { sl0: 0, ..s2(1) }, &f).contains("concatenated"));
    // 30 bits from level 0.
    assert!(
        bad(
            S2Config {
                t0sz: 34,
                sl0: 2,
                ..s2(1)
            },
            &f
        )
        .contains("too low")
    );
    // Two concatenated pages need 8 KiB alignment.
    let cfg = S2Config {
        root: s2(1).root + 0x1000,
        ..s2(1)
    };
    assert!(bad(cfg, &f).contains("aligned"));
    assert!(
        bad(
            S2Config {
                root: 1 << 44,
                ..s2(1)
            },
            &f
        )
        .contains("beyond")
    );
}

/// Table pages from the host allocator, identity "physical" addresses.
struct HostTables;

fn pages_layout(pages: usize) -> Layout {
    Layout::from_size_align(pages * 4096, pages * 4096).expect("layout")
}

impl TableMemory for HostTables {
    fn alloc_tables(&mut self, pages: usize) -> Option<u64> {
        // SAFETY: non-zero size.
        let p = unsafe { alloc_zeroed(pages_layout(pages)) };
        (!p.is_null()).then_some(p as u64)
    }

    fn free_tables(&mut self, pa: u64, pages: usize) {
        // SAFETY: allocated by alloc_tables with the same page count.
        unsafe { dealloc(pa as *mut u8, pages_layout(pages)) }
    }

    fn table_ptr(&self, pa: u64) -> *mut u64 {
        pa as *mut u64
    }
}

#[test]
fn config_for_a_real_stage2_table() {
    let mut mem = HostTables;
    let table = PageTable::<Stage2>::new(&mut mem, 40, 1).expect("table");
    let cfg = S2Config::for_table(&table, 9, 4).expect("config");
    assert_eq!((cfg.vmid, cfg.t0sz, cfg.sl0, cfg.ps), (9, 24, 1, 4));
    assert_eq!(cfg.root, table.root());
    assert_eq!(cfg.ia_bits(), 40);
    assert_eq!(cfg.start_level(), Some(1));
    // The host allocator's addresses may exceed 44 bits; check the rest.
    let mut f = features();
    f.oas_field = 5;
    assert_eq!(S2Config { ps: 5, ..cfg }.check(&f), Ok(()));
    table.destroy(&mut mem);

    let table = PageTable::<Stage2>::new(&mut mem, 39, 3);
    if let Ok(t) = table {
        assert!(S2Config::for_table(&t, 1, 4).is_err());
        t.destroy(&mut mem);
    }
}
