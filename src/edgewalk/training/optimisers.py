"""The update rules training uses, each a small object with
``step(theta, gradient, objective) -> theta``.

``gradient`` is the gradient of the objective the rule improves: descent rules subtract it
(cross-entropies), ascent rules add it (returns). ``objective(theta)``, where the method has one
in closed form, is what a line search evaluates; the other rules ignore it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SignAscent:
    """``theta += lr * sign(gradient)`` with sign(0) = 0 (RLVR, paper Sec. 5)."""

    lr: float

    def step(self, theta: np.ndarray, gradient: np.ndarray, objective=None) -> np.ndarray:
        return theta + self.lr * np.sign(gradient)


@dataclass
class GradientDescent:
    """``theta -= lr * gradient``."""

    lr: float

    def step(self, theta: np.ndarray, gradient: np.ndarray, objective=None) -> np.ndarray:
        return theta - self.lr * gradient


@dataclass
class BacktrackingDescent:
    """``theta -= s * gradient`` with the largest s = lr / 2**i (i = 0, 1, ...) that does not
    increase ``objective``: gradient descent whose step cannot overshoot, whatever the scale of
    the data (a cross-entropy of traces with large counts), and which is plain gradient descent
    wherever the full step already decreases the objective. If no step of at least lr * 2**-60
    helps, theta stays (a stationary point to rounding)."""

    lr: float
    halvings: int = 60

    def step(self, theta: np.ndarray, gradient: np.ndarray, objective=None) -> np.ndarray:
        if objective is None:
            raise ValueError("BacktrackingDescent needs the objective")
        current = objective(theta)
        size = self.lr
        for _ in range(self.halvings + 1):
            candidate = theta - size * gradient
            if objective(candidate) <= current:
                return candidate
            size /= 2
        return theta


@dataclass
class AdamAscent:
    """Adam with beta1 = 0.9, beta2 = 0.999 and eps = 1e-8, stepping up the gradient."""

    lr: float
    eps: float = 1e-8
    t: int = 0
    m: np.ndarray | None = field(default=None, repr=False)
    v: np.ndarray | None = field(default=None, repr=False)

    def step(self, theta: np.ndarray, gradient: np.ndarray, objective=None) -> np.ndarray:
        if self.m is None:
            self.m = np.zeros_like(theta)
            self.v = np.zeros_like(theta)
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * gradient
        self.v = 0.999 * self.v + 0.001 * gradient**2
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        return theta + self.lr * (m_hat / (np.sqrt(v_hat) + self.eps))
