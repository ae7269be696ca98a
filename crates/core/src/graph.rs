//! Agent graphs: which agents start after which (`Agent::after`), an order the sequential
//! phase can run them in, and the critical path.
//!
//! Conventions, stated once: agents are numbered by their position in the run's agent list;
//! `after[i]` lists the agents agent `i` starts after (each index once, in the order
//! configured). Independent agents have empty lists: then every order is topological and the
//! critical path is the longest single agent.

use crate::workload::Agent;

/// An agent's dependencies, by index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// `after[i]`: the agents agent `i` starts after.
    pub after: Vec<Vec<usize>>,
}

/// A graph that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("agent {agent:?} runs after {after:?}, which is not an agent of this run")]
    UnknownAgent { agent: String, after: String },
    #[error("agent {agent:?} runs after itself")]
    SelfDependency { agent: String },
    #[error("agents {} wait on each other in a cycle", .cycle.join(" -> "))]
    Cycle {
        /// Ids along the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
}

/// The longest chain of agent durations along the dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    /// Its length: the sum of its agents' durations, ms.
    pub ms: f64,
    /// Its agents, first to last (one agent for independent agents).
    pub agents: Vec<usize>,
}

impl Graph {
    /// `n` agents that depend on nothing.
    pub fn independent(n: usize) -> Graph {
        Graph {
            after: vec![Vec::new(); n],
        }
    }

    /// The graph of `agents` from their `after` ids.
    pub fn of(agents: &[Agent]) -> Result<Graph, GraphError> {
        Graph::from_ids(agents.iter().map(|a| (a.id.as_str(), a.after.as_slice())))
    }

    /// The graph of agents given as (id, ids it starts after), in run order.
    pub fn from_ids<'a, I, S>(agents: I) -> Result<Graph, GraphError>
    where
        I: IntoIterator<Item = (&'a str, &'a [S])>,
        S: AsRef<str> + 'a,
    {
        let agents: Vec<(&str, &[S])> = agents.into_iter().collect();
        let index = |id: &str| agents.iter().position(|(a, _)| *a == id);
        let mut after = Vec::with_capacity(agents.len());
        for (id, deps) in &agents {
            let mut list = Vec::with_capacity(deps.len());
            for d in deps.iter() {
                let d = d.as_ref();
                if d == *id {
                    return Err(GraphError::SelfDependency {
                        agent: (*id).to_owned(),
                    });
                }
                let j = index(d).ok_or_else(|| GraphError::UnknownAgent {
                    agent: (*id).to_owned(),
                    after: d.to_owned(),
                })?;
                if !list.contains(&j) {
                    list.push(j);
                }
            }
            after.push(list);
        }
        let g = Graph { after };
        if let Some(cycle) = g.find_cycle() {
            return Err(GraphError::Cycle {
                cycle: cycle.iter().map(|&i| agents[i].0.to_owned()).collect(),
            });
        }
        Ok(g)
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.after.len()
    }

    /// Whether the graph has no agents.
    pub fn is_empty(&self) -> bool {
        self.after.is_empty()
    }

    /// Whether no agent waits on another.
    pub fn is_independent(&self) -> bool {
        self.after.iter().all(Vec::is_empty)
    }

    /// A cycle, as indices with the first repeated at the end, if there is one.
    fn find_cycle(&self) -> Option<Vec<usize>> {
        // 0 unvisited, 1 on the current path, 2 done.
        let mut state = vec![0u8; self.len()];
        let mut path = Vec::new();
        fn visit(
            g: &Graph,
            i: usize,
            state: &mut [u8],
            path: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            state[i] = 1;
            path.push(i);
            for &j in &g.after[i] {
                match state[j] {
                    1 => {
                        let from = path.iter().position(|&p| p == j).expect("on the path");
                        // In the order the agents would have to run, from the lowest index.
                        let mut cycle: Vec<usize> = path[from..].iter().rev().copied().collect();
                        let lowest = (0..cycle.len())
                            .min_by_key(|&k| cycle[k])
                            .expect("not empty");
                        cycle.rotate_left(lowest);
                        cycle.push(cycle[0]);
                        return Some(cycle);
                    }
                    0 => {
                        if let Some(c) = visit(g, j, state, path) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            path.pop();
            state[i] = 2;
            None
        }
        (0..self.len()).find_map(|i| {
            if state[i] == 0 {
                visit(self, i, &mut state, &mut path)
            } else {
                None
            }
        })
    }

    /// A topological order that follows `preferred` as closely as the dependencies allow:
    /// at each step, the first agent of `preferred` not yet placed whose dependencies are all
    /// placed. For independent agents it is `preferred` itself. `preferred` must list every
    /// agent once, and the graph must be acyclic (as [`Graph::of`] guarantees).
    pub fn topological_order(&self, preferred: &[usize]) -> Vec<usize> {
        let mut placed = vec![false; self.len()];
        let mut order = Vec::with_capacity(self.len());
        while order.len() < preferred.len() {
            let next = preferred
                .iter()
                .copied()
                .find(|&i| !placed[i] && self.after[i].iter().all(|&d| placed[d]))
                .expect("an acyclic graph always has a ready agent");
            placed[next] = true;
            order.push(next);
        }
        order
    }

    /// The critical path given each agent's duration (`durations[i]`, ms; as the sequential
    /// phase measured it, tool waits included): the chain along the dependencies whose
    /// durations sum highest. Ties go to the chain ending at the lower index. `None` when
    /// `durations` does not give one finite, non-negative value per agent.
    pub fn critical_path(&self, durations: &[f64]) -> Option<CriticalPath> {
        if durations.len() != self.len()
            || durations.iter().any(|d| !d.is_finite() || *d < 0.0)
            || self.is_empty()
        {
            return None;
        }
        let order = self.topological_order(&(0..self.len()).collect::<Vec<_>>());
        // finish[i]: longest chain ending with agent i; via[i]: its predecessor on it.
        let mut finish = vec![0.0f64; self.len()];
        let mut via = vec![None; self.len()];
        for &i in &order {
            let mut best: Option<usize> = None;
            for &d in &self.after[i] {
                if best.is_none_or(|b| finish[d] > finish[b]) {
                    best = Some(d);
                }
            }
            finish[i] = durations[i] + best.map_or(0.0, |b| finish[b]);
            via[i] = best;
        }
        let mut end = 0;
        for i in 1..self.len() {
            if finish[i] > finish[end] {
                end = i;
            }
        }
        let mut agents = vec![end];
        while let Some(p) = via[*agents.last().expect("never empty")] {
            agents.push(p);
        }
        agents.reverse();
        Some(CriticalPath {
            ms: finish[end],
            agents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(spec: &[(&'static str, &[&'static str])]) -> Result<Graph, GraphError> {
        Graph::from_ids(spec.iter().map(|(id, after)| (*id, *after)))
    }

    #[test]
    fn independent_agents_have_the_longest_agent_as_critical_path() {
        let g = Graph::independent(2);
        assert!(g.is_independent());
        let cp = g.critical_path(&[300.0, 450.0]).unwrap();
        assert_eq!(
            cp,
            CriticalPath {
                ms: 450.0,
                agents: vec![1]
            }
        );
        assert_eq!(g.topological_order(&[1, 0]), vec![1, 0]);
    }

    #[test]
    fn fan_out_fan_in_takes_the_longest_worker() {
        // orchestrator -> w1, w2, w3 -> aggregator
        let g = graph(&[
            ("orch", &[]),
            ("w1", &["orch"]),
            ("w2", &["orch"]),
            ("w3", &["orch"]),
            ("agg", &["w1", "w2", "w3"]),
        ])
        .unwrap();
        let cp = g
            .critical_path(&[100.0, 200.0, 500.0, 300.0, 50.0])
            .unwrap();
        assert_eq!(cp.ms, 650.0);
        assert_eq!(cp.agents, vec![0, 2, 4]);
        // Reversed preference still puts every agent after its dependencies.
        assert_eq!(g.topological_order(&[4, 3, 2, 1, 0]), vec![0, 3, 2, 1, 4]);
    }

    #[test]
    fn a_pipeline_sums_every_stage() {
        let g = graph(&[("c", &["b"]), ("a", &[]), ("b", &["a"])]).unwrap();
        let cp = g.critical_path(&[1.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            cp,
            CriticalPath {
                ms: 7.0,
                agents: vec![1, 2, 0]
            }
        );
        assert_eq!(g.topological_order(&[0, 1, 2]), vec![1, 2, 0]);
    }

    #[test]
    fn unknown_ids_self_dependencies_and_cycles_are_named() {
        assert_eq!(
            graph(&[("a", &["x"])]).unwrap_err(),
            GraphError::UnknownAgent {
                agent: "a".into(),
                after: "x".into()
            }
        );
        assert_eq!(
            graph(&[("a", &["a"])]).unwrap_err(),
            GraphError::SelfDependency { agent: "a".into() }
        );
        let e = graph(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "agents a -> b -> c -> a wait on each other in a cycle"
        );
    }

    #[test]
    fn durations_that_do_not_fit_give_no_critical_path() {
        let g = Graph::independent(2);
        assert_eq!(g.critical_path(&[1.0]), None);
        assert_eq!(g.critical_path(&[1.0, f64::NAN]), None);
        assert_eq!(g.critical_path(&[1.0, -1.0]), None);
        assert_eq!(Graph::independent(0).critical_path(&[]), None);
    }

    #[test]
    fn a_dependency_listed_twice_counts_once() {
        let g = graph(&[("a", &[]), ("b", &["a", "a"])]).unwrap();
        assert_eq!(g.after[1], vec![0]);
    }
}
