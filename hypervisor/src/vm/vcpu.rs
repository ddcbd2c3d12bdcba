//! One vCPU as the other CPUs see it: where it runs, its power state, and
//! the mailboxes through which other CPUs ask it to start or stop and
//! raise its interrupts.

use super::psci::VcpuPower;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use spin::Mutex;

/// Requests a vCPU's physical CPU acts on when kicked. The three that
/// stop it are the low bits, next to the SGIs and the SPIs' flag in the
/// mail word ([`mail`]), so that the return path's test of all of them
/// ([`VcpuSlot::quiet`]) is one contiguous mask.
pub mod request {
    /// Stop the vCPU (guest off or reset).
    pub const STOP: u32 = 1;
    /// Power the whole guest off (asked at the hypervisor's console).
    pub const POWER_OFF: u32 = 2;
    /// Restart the whole guest (asked at the hypervisor's console).
    pub const RESTART: u32 = 4;
    /// Start the vCPU (entry and context are in the slot).
    pub const START: u32 = 8;
}

/// Most virtual SPIs of emulated devices pending for one vCPU.
pub const MAX_PENDING_SPIS: usize = 16;

/// One vCPU: where it runs and how others talk to it. (`mail` first: the
/// return path's load-acquire of it takes the slot's address as it is.)
#[repr(C)]
pub struct VcpuSlot {
    /// The mailboxes other CPUs write, in one word so that the return to
    /// the guest finds all of them empty with one load
    /// ([`VcpuSlot::quiet`]): the SGIs ([`VcpuSlot::sgis`]), the SPIs'
    /// flag ([`VcpuSlot::spis_pending`]) and the requests
    /// ([`VcpuSlot::requests`]), at [`mail`]'s positions.
    mail: AtomicU64,
    /// Physical CPU (logical index) it runs on.
    pub pcpu: usize,
    /// [`VcpuPower`] as u8.
    power: AtomicU8,
    /// Entry point for the next start.
    pub entry: AtomicU64,
    /// x0 for the next start.
    pub context: AtomicU64,
    /// Virtual SPIs raised for this vCPU from another CPU (emulated devices).
    pub spis: Mutex<heapless::Vec<u32, MAX_PENDING_SPIS>>,
}

/// Where each mailbox sits in [`VcpuSlot`]'s mail word: the SPIs' flag,
/// the SGIs and the low [`request`](super::request) bits (the stops) are
/// one run of bits, 15 to 34.
pub mod mail {
    /// Virtual SGIs raised by other vCPUs, one bit per SGI: bits 16-31.
    pub const SGIS: super::MailField = super::MailField {
        shift: 16,
        mask: 0xffff,
    };
    /// Set when `spis` may be non-empty, so that the exit path takes the
    /// lock only then: bit 15.
    pub const SPIS_PENDING: super::MailField = super::MailField { shift: 15, mask: 1 };
    /// Pending [`super::request`] bits: bits 32-63.
    pub const REQUESTS: super::MailField = super::MailField {
        shift: 32,
        mask: 0xffff_ffff,
    };
}

/// The bits of the mail word [`VcpuSlot::quiet`] tests: the SGIs, the
/// SPIs' flag and `requests`.
const fn busy(requests: u32) -> u64 {
    mail::SGIS.mask << mail::SGIS.shift
        | mail::SPIS_PENDING.mask << mail::SPIS_PENDING.shift
        | (requests as u64) << mail::REQUESTS.shift
}

/// The return path's test (the stop requests with the SGIs and the
/// SPIs' flag) is one run of bits: one logical-immediate `tst`.
const _: () = {
    let b = busy(request::STOP | request::POWER_OFF | request::RESTART);
    let low = b & b.wrapping_neg();
    assert!((b + low) & b == 0, "the busy bits are contiguous");
};

/// A field of the mail word: `mask` (unshifted) at bit `shift`.
#[derive(Clone, Copy)]
pub struct MailField {
    shift: u32,
    mask: u64,
}

/// One mailbox of a vCPU, an atomic `u32` as the others see it: each
/// operation is the same operation of the mail word on the field's bits
/// alone (the other fields unchanged).
#[derive(Clone, Copy)]
pub struct Mailbox<'a> {
    word: &'a AtomicU64,
    field: MailField,
}

impl Mailbox<'_> {
    fn get(&self, word: u64) -> u32 {
        ((word >> self.field.shift) & self.field.mask) as u32
    }

    fn bits(&self, v: u32) -> u64 {
        (u64::from(v) & self.field.mask) << self.field.shift
    }

    /// The field's value.
    #[inline(always)]
    pub fn load(&self, order: Ordering) -> u32 {
        self.get(self.word.load(order))
    }

    /// Sets the bits of `v`; returns the previous value.
    #[inline(always)]
    pub fn fetch_or(&self, v: u32, order: Ordering) -> u32 {
        self.get(self.word.fetch_or(self.bits(v), order))
    }

    /// Keeps only the bits of `v`; returns the previous value.
    #[inline(always)]
    pub fn fetch_and(&self, v: u32, order: Ordering) -> u32 {
        let clear = self.bits(!v);
        self.get(self.word.fetch_and(!clear, order))
    }

    /// Sets the field to `v` (the other fields unchanged).
    pub fn store(&self, v: u32, order: Ordering) {
        let load = match order {
            Ordering::Release | Ordering::Relaxed => Ordering::Relaxed,
            _ => Ordering::Acquire,
        };
        let field = self.bits(u32::MAX);
        let _ = self
            .word
            .fetch_update(order, load, |w| Some(w & !field | self.bits(v)));
    }

    /// Clears the field; returns the previous value (`swap(0)`).
    #[inline(always)]
    pub fn take(&self, order: Ordering) -> u32 {
        self.fetch_and(0, order)
    }
}

impl VcpuSlot {
    /// A vCPU on physical CPU `pcpu`, off.
    pub fn new(pcpu: usize) -> Self {
        VcpuSlot {
            mail: AtomicU64::new(0),
            pcpu,
            power: AtomicU8::new(0),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
            spis: Mutex::new(heapless::Vec::new()),
        }
    }

    /// Virtual SGIs raised by other vCPUs, one bit per SGI.
    #[inline(always)]
    pub fn sgis(&self) -> Mailbox<'_> {
        self.mailbox(mail::SGIS)
    }

    /// Pending [`request`] bits.
    #[inline(always)]
    pub fn requests(&self) -> Mailbox<'_> {
        self.mailbox(mail::REQUESTS)
    }

    /// 1 when `spis` may be non-empty, so that the exit path takes the
    /// lock only then.
    #[inline(always)]
    pub fn spis_pending(&self) -> Mailbox<'_> {
        self.mailbox(mail::SPIS_PENDING)
    }

    fn mailbox(&self, field: MailField) -> Mailbox<'_> {
        Mailbox {
            word: &self.mail,
            field,
        }
    }

    /// No request among `requests`, no SGI raised and no SPI pending: what
    /// the three mailboxes' loads would say (one Acquire load of them all).
    #[inline(always)]
    pub fn quiet(&self, requests: u32) -> bool {
        self.mail.load(Ordering::Acquire) & busy(requests) == 0
    }

    /// Current power state.
    pub fn power(&self) -> VcpuPower {
        match self.power.load(Ordering::Acquire) {
            0 => VcpuPower::Off,
            1 => VcpuPower::On,
            _ => VcpuPower::OnPending,
        }
    }

    /// Sets the power state.
    pub fn set_power(&self, p: VcpuPower) {
        let v = match p {
            VcpuPower::Off => 0,
            VcpuPower::On => 1,
            VcpuPower::OnPending => 2,
        };
        self.power.store(v, Ordering::Release);
    }

    /// Asks the vCPU to start at `entry` with `context` in x0: it is
    /// on-pending until its CPU acts on the request (the caller kicks it).
    pub fn request_start(&self, entry: u64, context: u64) {
        self.entry.store(entry, Ordering::Relaxed);
        self.context.store(context, Ordering::Relaxed);
        self.set_power(VcpuPower::OnPending);
        self.requests().fetch_or(request::START, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mailboxes in one word against three separate words (what they
    /// were): random `fetch_or`, `fetch_and`, `take`, `store` and `load`
    /// on random fields return what the separate word would and change
    /// only their own field; `quiet` is the three loads' answer.
    #[test]
    fn mailboxes_in_one_word_are_three_words() {
        let slot = VcpuSlot::new(0);
        // sgis, spis_pending, requests; and the bits each field holds.
        let mut model = [0u32; 3];
        let masks = [0xffffu32, 1, u32::MAX];
        let mut rng = crate::test_rng::Rng(0x1234_5678_9abc_def1u64);
        let mut rand = move || rng.next();
        for step in 0..20_000 {
            let f = (rand() % 3) as usize;
            let b = [slot.sgis(), slot.spis_pending(), slot.requests()][f];
            // Values within the field, or with bits beyond it (ignored).
            let v = rand() as u32 & if rand() % 2 == 0 { masks[f] } else { u32::MAX };
            let old = model[f];
            let got = match rand() % 5 {
                0 => {
                    model[f] |= v & masks[f];
                    b.fetch_or(v, Ordering::AcqRel)
                }
                1 => {
                    model[f] &= v;
                    b.fetch_and(v, Ordering::AcqRel)
                }
                2 => {
                    model[f] = 0;
                    b.take(Ordering::AcqRel)
                }
                3 => {
                    model[f] = v & masks[f];
                    b.store(v, Ordering::Release);
                    old
                }
                _ => b.load(Ordering::Acquire),
            };
            assert_eq!(got, old, "step {step}: the previous value");
            let now = [slot.sgis(), slot.spis_pending(), slot.requests()]
                .map(|m| m.load(Ordering::Relaxed));
            assert_eq!(now, model, "step {step}: every field");
            let stop = request::STOP | request::POWER_OFF | request::RESTART;
            assert_eq!(
                slot.quiet(stop),
                model[2] & stop == 0 && model[0] == 0 && model[1] == 0,
                "step {step}"
            );
        }
    }
}
