//! CPU pinning for `overhead --pin`: the simulator on its own CPUs, the client on the rest,
//! so what the client measures is not the server competing with it for the same cores.
//!
//! Linux affinity is per thread and inherited by threads and processes created afterwards,
//! so the parent pins its calling thread to the server's CPUs while it starts a simulator
//! (whose threads inherit them), then to the client's CPUs while it spawns the children.

use std::io;

/// The CPUs this thread may run on, in ascending order.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Restrict the calling thread (and whatever it creates from now on) to `cpus`.
pub fn pin_this_thread(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: the set is ours; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Which CPUs the simulator gets and which the client gets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub server: Vec<usize>,
    pub client: Vec<usize>,
}

impl Split {
    /// The first half of `cpus` (at least one) for the server, the rest for the client.
    pub fn halves(cpus: &[usize]) -> Result<Split, String> {
        if cpus.len() < 2 {
            return Err(format!(
                "--pin needs at least 2 CPUs to give server and client their own, but this process may use {} ({:?})\n  hint: run without --pin, or with more CPUs allowed (taskset/cgroup)",
                cpus.len(),
                cpus
            ));
        }
        let half = cpus.len() / 2;
        Ok(Split {
            server: cpus[..half].to_vec(),
            client: cpus[half..].to_vec(),
        })
    }
}

/// `[0, 1, 2, 5]` as `0-2,5`, as `taskset -c` takes it.
pub fn list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_give_each_side_its_own_cpus() {
        assert_eq!(
            Split::halves(&[0, 1]).unwrap(),
            Split {
                server: vec![0],
                client: vec![1]
            }
        );
        let s = Split::halves(&[0, 1, 2, 3, 4]).unwrap();
        assert_eq!((s.server, s.client), (vec![0, 1], vec![2, 3, 4]));
        let e = Split::halves(&[3]).unwrap_err();
        assert!(e.contains("at least 2 CPUs") && e.contains("[3]"), "{e}");
    }

    #[test]
    fn lists_ranges_like_taskset() {
        assert_eq!(list(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(list(&[1]), "1");
        assert_eq!(list(&[]), "");
    }

    #[test]
    fn pinning_a_thread_is_seen_by_that_thread_and_its_children() {
        let cpus = allowed().unwrap();
        assert!(!cpus.is_empty());
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            pin_this_thread(&[last]).unwrap();
            assert_eq!(allowed().unwrap(), vec![last]);
            let child = std::thread::spawn(|| allowed().unwrap()).join().unwrap();
            assert_eq!(child, vec![last]);
        })
        .join()
        .unwrap();
    }
}
